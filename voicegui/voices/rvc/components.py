"""The parts of an RVC voice at the chosen backend, precision and device.

* **torch**: the synthesizer from the ``.pth`` (an ``.onnx`` voice model runs as exported, on
  onnxruntime, whatever the backend), HuBERT/ContentVec from the shared weights.
* **onnx**: both exported once into the user cache (onnx_content.py) and run by onnxruntime.

Precision ('auto' resolves as for Seed-VC: voices/precision.py):

* fp32: everything float32.
* bf16 / fp16 (torch): HuBERT, and the synthesizer's encoder, flow and decoder convolutions in
  that dtype; the sine source's phase stays float32 (Synthesizer.set_trunk_dtype). On a CPU
  with AVX512-BF16/AMX this is what 'auto' picks.
* int8: dynamic int8 quantisation (int8 weights, activations quantised per call) of the
  content encoder's transformer (torch: its Linear layers; onnx: the graph's MatMul weights, as
  Seed-VC's ONNX path does) and, on onnx, of the synthesizer's convolutions (ConvInteger; torch
  has no dynamic quantisation of convolutions, so its synthesizer stays float32). onnx's 'auto'
  on the CPU.

The pitch estimators always run float32: RMVPE's peak picking is fragile (two salience peaks
can be 3e-5 apart) and YIN is numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from voicegui.settings import F0_METHODS
from voicegui.voices import precision as P

from .shared_weights import SharedWeights

TORCH_DEVICES = ("auto", "cpu", "cuda", "mps")
ONNX_PRECISIONS = ("fp32", "int8")

Progress = Callable[[str, int, int], None]


class PartsError(RuntimeError):
    """A part of the voice cannot be loaded; the message names the file and the problem."""


@dataclass
class RvcParts:
    synth: object  # Synthesizer or OnnxSynthesizer
    content: object  # .features(wav16k (1, N), version) -> (1, T, C)
    estimator: object | None  # .f0(wav16k) -> Hz per 10 ms frame; None for a no-pitch model
    backend: str
    precision: str  # what runs, after 'auto' and fallbacks
    device: torch.device  # where the torch parts run
    provider: str  # for the window and the bench, e.g. 'CPU (torch, bf16)'
    warnings: list[str] = field(default_factory=list)  # what the user should see
    notes: list[str] = field(default_factory=list)  # how a choice was adjusted


def torch_device_for(choice: str) -> torch.device:
    """Where the torch parts run: the choice when torch knows it; onnxruntime-only devices
    (TensorRT, DirectML, CoreML) leave them on the CPU."""
    from voicegui.voices.compute_devices import torch_device

    choice = (choice or "auto").lower()
    if choice in TORCH_DEVICES or choice.startswith("cuda:"):
        return torch_device(choice)
    return torch.device("cpu")


def resolve_precision(backend: str, choice: str, device_type: str) -> tuple[str, list[str]]:
    """(precision that runs, notes about an adjusted choice)."""
    choice = (choice or "auto").lower()
    notes: list[str] = []
    if backend == "onnx":
        if choice == "auto":
            return ("int8" if device_type == "cpu" else "fp32"), notes
        if choice not in ONNX_PRECISIONS:
            notes.append(f"no {choice} graphs for RVC on onnxruntime: running the fp32 ones")
            return "fp32", notes
        return choice, notes
    chosen = P.resolve(choice, device_type)
    if chosen == "int8" and device_type != "cpu":
        notes.append("int8 (dynamic quantisation) runs on the CPU only: running fp32")
        chosen = "fp32"
    return chosen, notes


def load_estimator(method: str, shared: SharedWeights | None, device: torch.device):
    """The pitch estimator ``method`` (rmvpe needs the shared weights' rmvpe.pt)."""
    if method == "rmvpe":
        from .rmvpe import load_rmvpe

        if shared is None:
            raise PartsError("RMVPE needs the RVC shared weights (rmvpe.pt)")
        return load_rmvpe(shared.rmvpe, device)
    if method == "fcpe":
        from .fcpe import load_fcpe

        return load_fcpe(device=device)
    if method == "yin":
        from .yin import Yin

        return Yin()
    raise PartsError(f"unknown pitch estimator '{method}': one of {', '.join(F0_METHODS)}")


def _hubert_sources(path: Path) -> list[Path]:
    if path.is_dir():
        from .shared_weights import HF_CONFIG, HF_WEIGHTS

        weights = next(path / w for w in HF_WEIGHTS if (path / w).is_file())
        return [path / HF_CONFIG, weights]
    return [path]


def load_torch_content(shared: SharedWeights, device: torch.device, precision: str):
    from .hubert import load_hubert

    hubert = load_hubert(shared.hubert, device)
    if precision in ("bf16", "fp16"):
        hubert = hubert.to(P.dtype_of(precision))
    elif precision == "int8":
        # the 12 transformer layers hold its Linear compute; the conv front and the
        # projections it reads its dtype from stay float32
        hubert.encoder = P.quantize_linear_int8(hubert.encoder)
    return hubert


def onnx_plan(device: str):
    """onnxruntime's providers for ``device``, probed once with a one-node model so that every
    session of the voice asks only for those that load (others print errors and cost time)."""
    from voicegui.voices.onnx.providers import plan_providers
    from voicegui.voices.onnx.runtime import probe_providers

    plan = plan_providers(device)
    probe_providers(plan)  # narrows plan.requested to what loads
    return plan


def _load_onnx_content(shared, version, precision, plan, threads, cache_dir, progress):
    from .hubert import load_hubert
    from .onnx_content import OnnxContent, cached_graph, export_content

    def export(out: Path) -> None:
        export_content(load_hubert(shared.hubert, "cpu"), version, out)

    path = cached_graph(
        f"content-{version}",
        precision,
        _hubert_sources(shared.hubert),
        export,
        cache_dir,
        progress,
    )
    return OnnxContent(path, version, plan, threads)


def _load_onnx_synth(model: Path, precision: str, plan, threads, cache_dir, progress):
    """The .pth exported to voicegui's ONNX layout (streaming cut, formant, injected noise)."""
    from .checkpoints import load_voice_model
    from .onnx_content import cached_graph, quantize_convs_int8
    from .onnx_export import export_synthesizer
    from .onnx_model import OnnxSynthesizer

    def export(out: Path) -> None:
        export_synthesizer(load_voice_model(model)[0], out, "voicegui")

    path = cached_graph(
        "synth", precision, [model], export, cache_dir, progress, quantize=quantize_convs_int8
    )
    return OnnxSynthesizer(path, threads=threads, plan=plan)


def load_synth(model: Path, device: torch.device, precision: str, threads=None, plan=None):
    """A voice file's synthesizer as it runs without an export: a .pth on ``device`` in
    ``precision``, an .onnx as exported (onnxruntime, with the providers of ``plan``). Raises
    PartsError naming the file."""
    from .checkpoints import VoiceModelError, load_voice_model
    from .onnx_model import OnnxModelError, OnnxSynthesizer

    model = Path(model)
    try:
        if model.suffix.lower() == ".onnx":
            return OnnxSynthesizer(model, threads=threads, plan=plan or onnx_plan(device.type))
        synth = load_voice_model(model, device)[0]
    except (VoiceModelError, OnnxModelError) as exc:
        raise PartsError(str(exc)) from exc
    except OSError as exc:
        raise PartsError(f"{model.name} cannot be read: {exc.strerror or exc}") from exc
    if precision in ("bf16", "fp16"):
        synth.set_trunk_dtype(P.dtype_of(precision))
    return synth


def torch_provider(device: torch.device, precision: str) -> str:
    """'CUDA (torch, bf16)': where and how the torch parts run, for the window and bench."""
    name = {"cuda": "CUDA", "mps": "MPS", "cpu": "CPU"}.get(device.type, device.type)
    return f"{name} (torch, {precision})"


def load_parts(
    model: Path,
    shared: SharedWeights,
    f0_method: str,
    backend: str = "torch",
    precision: str = "auto",
    device: str = "auto",
    *,
    threads: int | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> RvcParts:
    """Everything but the index and the stream; errors name the file that failed."""
    from voicegui.voices.seedvc.checkpoints import CheckpointError

    from .checkpoints import VoiceModelError
    from .onnx_model import OnnxModelError

    if backend not in ("torch", "onnx"):
        raise PartsError(f"unknown backend '{backend}': torch or onnx")
    if f0_method not in F0_METHODS:
        raise PartsError(f"unknown pitch estimator '{f0_method}': one of {', '.join(F0_METHODS)}")
    from voicegui.voices.onnx import providers as PV

    dev = torch_device_for(device)
    model = Path(model)
    plan = None
    if backend == "onnx" or model.suffix.lower() == ".onnx":
        plan = onnx_plan(device if backend == "onnx" or dev.type != "cpu" else "cpu")
    where = dev.type
    if backend == "onnx":  # what onnxruntime runs on, as probed
        where = "cuda" if plan.requested[0] in PV.GPU_PROVIDERS else "cpu"
    chosen, notes = resolve_precision(backend, precision, where)
    if model.suffix.lower() == ".onnx" or backend == "torch":
        synth = load_synth(model, dev, chosen, threads, plan)
        if model.suffix.lower() == ".onnx" and backend == "torch" and chosen != "fp32":
            notes.append(f"{model.name} is an ONNX file: its synthesizer runs as exported")
    else:
        try:
            synth = _load_onnx_synth(model, chosen, plan, threads, cache_dir, progress)
        except (VoiceModelError, OnnxModelError) as exc:
            raise PartsError(str(exc)) from exc
        except OSError as exc:
            raise PartsError(f"{model.name} cannot be read: {exc.strerror or exc}") from exc
    version = "v1" if _feature_dim(synth) == 256 else "v2"
    try:
        if backend == "onnx":
            args = (shared, version, chosen, plan, threads, cache_dir, progress)
            content = _load_onnx_content(*args)
        else:
            content = load_torch_content(shared, dev, chosen)
        estimator = load_estimator(f0_method, shared, dev) if _has_f0(synth) else None
    except CheckpointError as exc:
        raise PartsError(f"{exc} (reinstall: `voicegui models download rvc`)") from exc
    warnings = list(plan.warnings) if plan is not None else []
    if backend == "onnx":
        primary = content.providers[0] if content.providers else PV.CPU
        provider = f"{PV.SHORT.get(primary, primary)} (onnxruntime, {chosen})"
    else:
        provider = torch_provider(dev, chosen)
    return RvcParts(synth, content, estimator, backend, chosen, dev, provider, warnings, notes)


def _feature_dim(synth) -> int:
    return getattr(synth, "feature_dim", None) or synth.config.feature_dim


def _has_f0(synth) -> bool:
    return bool(synth.f0)
