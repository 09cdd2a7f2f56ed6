"""Choosing onnxruntime execution providers, and telling the truth about which one runs.

onnxruntime-gpu lists the CUDA and TensorRT providers whether or not a GPU, driver, CUDA or
TensorRT libraries are present; a provider that cannot load is dropped at session creation with
a log line only. So the list is built from what the build offers, in preference order, filtered
by the user's device choice, and the providers actually active are read back from
``session.get_providers()``. A GPU provider that was asked for and is not active becomes a
visible warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from voicegui.threads import compute_threads, physical_cores  # noqa: F401

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, DIRECTML, COREML, CPU)
SHORT = {TENSORRT: "TensorRT", CUDA: "CUDA", DIRECTML: "DirectML", COREML: "CoreML", CPU: "CPU"}
GPU_PROVIDERS = (TENSORRT, CUDA, DIRECTML)  # those that get fp16 graphs and device-side IO

# The user's device choice (VoiceSettings.device) -> providers it asks for, best first.
DEVICE_CHOICES = {
    "auto": PREFERENCE,
    "cpu": (CPU,),
    "cuda": (CUDA, CPU),
    "tensorrt": (TENSORRT, CUDA, CPU),
    "dml": (DIRECTML, CPU),
    "directml": (DIRECTML, CPU),
    "coreml": (COREML, CPU),
    "mps": (COREML, CPU),  # Apple GPU/ANE: CoreML is onnxruntime's way there
}


@dataclass
class ProviderPlan:
    """Providers to ask onnxruntime for, and what was said about the choice."""

    requested: list[str]  # in order, each present in the build
    device_id: int = 0
    explicit: bool = False  # the user named a device (not 'auto')
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # short forms of the warnings, for a readout

    @property
    def wanted(self) -> str:
        """The provider the user hopes to run on."""
        return self.requested[0] if self.requested else CPU


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def plan_providers(device: str = "auto", available: list[str] | None = None) -> ProviderPlan:
    """Providers for ``device`` ('auto', 'cpu', 'cuda[:N]', 'tensorrt', 'dml', 'coreml', 'mps')."""
    available = available_providers() if available is None else available
    choice = (device or "auto").strip().lower()
    device_id = 0
    if ":" in choice:
        choice, _, idx = choice.partition(":")
        device_id = int(idx) if idx.isdigit() else 0
    wanted = DEVICE_CHOICES.get(choice)
    plan = ProviderPlan([], device_id, explicit=choice != "auto")
    if wanted is None:
        plan.warnings.append(f"unknown compute device '{device}': using automatic choice")
        plan.tags.append(f"unknown device '{device}'")
        wanted, plan.explicit = PREFERENCE, False
    for name in wanted:
        if name in available:
            plan.requested.append(name)
        elif plan.explicit and name != CPU:
            plan.tags.append(f"no {SHORT[name]} in this onnxruntime")
            plan.warnings.append(
                f"{SHORT[name]} was requested but this onnxruntime build has no {name} "
                f"(available: {', '.join(SHORT.get(p, p) for p in available)})"
            )
    if CPU not in plan.requested:
        plan.requested.append(CPU)
    return plan


def provider_options(name: str, plan: ProviderPlan, fp16: bool, cache: Path | None) -> dict:
    if name == CUDA:
        return {
            "device_id": plan.device_id,
            "arena_extend_strategy": "kSameAsRequested",
            "cudnn_conv_algo_search": "EXHAUSTIVE",  # shapes repeat block after block
            "do_copy_in_default_stream": True,
        }
    if name == TENSORRT:
        opts = {"device_id": plan.device_id, "trt_fp16_enable": fp16}
        if cache is not None:
            (cache / "trt").mkdir(parents=True, exist_ok=True)
            opts.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(cache / "trt"),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(cache / "trt"),
            )
        return opts
    if name == DIRECTML:
        return {"device_id": plan.device_id}
    return {}


def session_options(threads: int | None = None, spin: bool = False, gpu: bool = False):
    """Options for a small machine: one pool of physical-core threads, sequential execution."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or compute_threads()
    so.inter_op_num_threads = 1
    # Spinning threads burn the cores the audio and GUI threads need between blocks.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if gpu:
        so.enable_mem_pattern = False  # DirectML requires it; harmless for CUDA
    so.log_severity_level = 3
    return so


def create_session(
    path: Path,
    plan: ProviderPlan,
    fp16: bool = False,
    threads: int | None = None,
    cache: Path | None = None,
    spin: bool = False,
):
    """An InferenceSession on the plan's providers; returns (session, active providers)."""
    import onnxruntime as ort

    if CUDA in plan.requested or TENSORRT in plan.requested:
        _preload_cuda()
    providers = [(p, provider_options(p, plan, fp16, cache)) for p in plan.requested]
    gpu = any(p in GPU_PROVIDERS for p in plan.requested)
    so = session_options(threads, spin, gpu)
    sess = ort.InferenceSession(str(path), so, providers=providers)
    return sess, list(sess.get_providers())


_preloaded = False


def _preload_cuda() -> None:
    """Load CUDA/cuDNN from pip packages if present (onnxruntime >= 1.21); harmless otherwise."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    try:
        import contextlib
        import io

        import onnxruntime as ort

        if hasattr(ort, "preload_dlls"):
            said = io.StringIO()
            with contextlib.redirect_stdout(said):  # it prints every library it cannot find
                ort.preload_dlls()
            if said.getvalue().strip():
                log.debug("onnxruntime.preload_dlls: %s", said.getvalue().strip())
    except Exception as exc:  # a missing CUDA is reported from the session's providers
        log.debug("onnxruntime.preload_dlls failed: %s", exc)


def check_active(plan: ProviderPlan, active: list[str]) -> None:
    """Record a warning when the wanted provider did not load (and narrow the plan so that
    later sessions do not retry a provider that cannot load)."""
    primary = active[0] if active else CPU
    wanted = plan.wanted
    if primary == wanted:
        return
    missing = [p for p in plan.requested if p not in active and p != CPU]
    if plan.explicit and wanted != CPU:
        msg = (
            f"{SHORT[wanted]} was requested but could not be loaded (GPU, driver or "
            f"{SHORT[wanted]} libraries missing); running on {SHORT.get(primary, primary)}"
        )
        plan.warnings.append(msg)
        plan.tags.append(f"{SHORT[wanted]} failed to load")
        log.warning(msg)
    else:
        names = ", ".join(SHORT.get(p, p) for p in missing)
        msg = f"{names} listed by onnxruntime but not usable here; running on {SHORT[primary]}"
        plan.notes.append(msg)
        log.info(msg)
    plan.requested = [p for p in plan.requested if p in active or p == CPU]
    if not plan.requested:
        plan.requested = [CPU]
