"""Seed-VC on onnxruntime: the same interface SeedVCVoice uses from SeedVCModel.

One block = content encoder -> length regulator -> DiT prepare -> N Euler steps -> vocoder, each
an onnxruntime session. With IO binding every intermediate stays where the provider computes
(GPU memory for CUDA/TensorRT/DirectML): only the window, a few scalars per step and the noise go
in, and only the block's samples come out. The Euler loop stays in Python (steps change live).

Random draws use the same seeded torch generators, in the same order, as the torch model, so
both backends produce the same noise for the same seed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np
import torch

from voicegui.voices.onnx import export as X
from voicegui.voices.onnx import providers as PV
from voicegui.voices.onnx.graphs import nearest_index
from voicegui.voices.seedvc.cfm import _euler_times
from voicegui.voices.seedvc.features import (
    kaldi_fbank,
    mean_normalise,
    mel_spectrogram,
    resample_22k_to_16k,
)
from voicegui.voices.seedvc.model import (
    HOP,
    SAMPLE_RATE,
    VOCODER_MARGIN,
    BlockPlan,
    Prompt,
)
from voicegui.voices.timing import Timer

log = logging.getLogger(__name__)

Array = np.ndarray | torch.Tensor  # host arrays; device tensors are onnxruntime OrtValues

MEL = 80
N_HARMONICS = 9
DEFAULT_SEED = 0
# Precision when 'auto': half on GPU providers; int8 (DiT and content encoder) on the CPU, where
# it is what keeps a small machine in real time (about 2x faster than fp32; block output ~47 dB
# SNR against fp32 on the parity kit). 'fp32' stays selectable.
AUTO_GPU_PRECISION = "fp16"
AUTO_CPU_PRECISION = "int8"


def precision_plan(precision: str, with_content: bool) -> dict[str, str]:
    """Stage -> precision of the exported graph for a model precision."""
    if precision not in X.PRECISIONS:
        raise ValueError(f"precision must be one of {X.PRECISIONS}, got {precision!r}")
    plan = {}
    for stage in X.STAGES:
        if stage == "content" and not with_content:
            continue
        if precision == "int8":
            plan[stage] = "int8" if stage in X.INT8_STAGES else "fp32"
        elif precision == "fp16":
            plan[stage] = "fp32" if stage == "campplus" else "fp16"  # once per reference
        else:
            plan[stage] = "fp32"
    return plan


# --------------------------------------------------------------------------- noise sources


class CFMNoise:
    """The CFM's noise generator, as SeedVCVoice.reset() reseeds it (``seed``, ``_generators``)."""

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def draw(self, frames: int) -> np.ndarray:
        dev = torch.device("cpu")
        gen = self._generators.get(dev)
        if gen is None:
            gen = self._generators[dev] = torch.Generator(device=dev)
            gen.manual_seed(self.seed)
        return torch.randn((1, MEL, frames), generator=gen).numpy()


class VocoderNoise:
    """HiFT's phase and noise draws (same generator use as HiFTGenerator.draw_*)."""

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self._seed = seed
        self._gen: torch.Generator | None = None

    def reset_rng(self, seed: int | None = None) -> None:
        if seed is not None:
            self._seed = seed
        self._gen = None

    def _generator(self) -> torch.Generator:
        if self._gen is None:
            self._gen = torch.Generator()
            self._gen.manual_seed(self._seed)
        return self._gen

    def draw_phase(self) -> np.ndarray:
        u = torch.rand(1, N_HARMONICS, 1, generator=self._generator())
        phase = (u * 2 - 1) * math.pi
        phase[:, 0] = 0
        return phase.numpy()

    def draw_noise(self, n: int) -> np.ndarray:
        return torch.randn(1, N_HARMONICS, n, generator=self._generator()).numpy()


# --------------------------------------------------------------------------- sessions


@dataclass
class _View:
    """The leading rows of a device tensor, bound by pointer (no copy)."""

    value: object  # OrtValue
    shape: tuple[int, ...]


class _Stage:
    def __init__(self, sess, device: str, device_id: int) -> None:
        self.sess = sess
        self.device, self.device_id = device, device_id
        self.outputs = [o.name for o in sess.get_outputs()]
        # sessions may run from two threads (prompt from the GUI, blocks from the audio
        # thread); an IO binding may not: one per thread
        self._local = threading.local()

    @property
    def io(self):
        io = getattr(self._local, "io", None)
        if io is None:
            io = self._local.io = self.sess.io_binding()
        return io

    def run(self, inputs: dict, outputs: dict | None = None, host_outputs: tuple = ()) -> list:
        """Bind and run; values are numpy (host), OrtValue (device) or _View. ``outputs``
        maps names to preallocated OrtValues; others are allocated on the device, or on the
        host for names in ``host_outputs``."""
        import onnxruntime as ort

        io = self.io
        io.clear_binding_inputs()
        io.clear_binding_outputs()
        keep = []  # host arrays stay alive until the run is over (they may be bound in place)
        for name, v in inputs.items():
            if isinstance(v, np.ndarray):
                keep.append(np.ascontiguousarray(v))
                io.bind_cpu_input(name, keep[-1])
            elif isinstance(v, _View):
                io.bind_input(
                    name,
                    v.value.device_name(),
                    self.device_id,
                    np.float32,
                    list(v.shape),
                    v.value.data_ptr(),
                )
            elif isinstance(v, ort.OrtValue):
                io.bind_ortvalue_input(name, v)
            else:
                raise TypeError(f"{name}: cannot bind {type(v).__name__}")
        outputs = outputs or {}
        for name in self.outputs:
            if name in outputs:
                io.bind_ortvalue_output(name, outputs[name])
            elif name in host_outputs:
                io.bind_output(name, "cpu")
            else:
                io.bind_output(name, self.device, self.device_id)
        self.sess.run_with_iobinding(io)
        del keep
        return io.get_outputs()


def _f32(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    return np.ascontiguousarray(a, dtype=np.float32)


def _io_device(provider: str) -> str:
    return {PV.CUDA: "cuda", PV.TENSORRT: "cuda", PV.DIRECTML: "dml"}.get(provider, "cpu")


# --------------------------------------------------------------------------- the model


class OrtSeedVCModel:
    """Drop-in for SeedVCModel inside SeedVCVoice, running the exported graphs."""

    def __init__(
        self,
        stages: dict[str, _Stage],
        plan: PV.ProviderPlan,
        active: list[str],
        precision: str,
    ) -> None:
        self.stages = stages
        self.active = active  # providers of the DiT step session, best first
        self.precision = precision
        self.warnings: list[str] = list(plan.warnings)  # for the GUI: requested != active
        self.notes: list[str] = list(plan.notes)  # informational (auto choice fell back)
        self._tags = list(plan.tags)
        primary = active[0] if active else PV.CPU
        self.io_device = _io_device(primary)
        self.device_id = plan.device_id
        # SeedVCVoice moves windows to .device: the host, since the window enters via binding
        self.device = torch.device("cpu")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.timer = Timer(self.device)
        self.cfm = CFMNoise()
        self.vocoder = VocoderNoise()
        self._prompt_key: tuple | None = None
        self._prompt_values: dict = {}
        self._prompt_refs: tuple = ()

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        dit: Path,
        hift: Path,
        campplus: Path,
        content_dir: Path | None = None,
        device: str = "auto",
        half: bool | None = None,
        *,
        precision: str = "auto",
        cache_dir: Path | None = None,
        progress: X.Progress | None = None,
        threads: int | None = None,
        spin: bool = False,
    ) -> OrtSeedVCModel:
        """Export (or reuse) the graphs and open them on the best provider for ``device``.

        ``precision``: 'auto' (fp16 on GPU providers, AUTO_CPU_PRECISION on the CPU), 'fp32',
        'fp16' or 'int8' (CPU). ``half`` (the torch loader's flag) maps to fp16/fp32 when
        precision is 'auto'. ``progress(stage, i, n)`` reports exports.
        """
        plan = PV.plan_providers(device)
        active = probe_providers(plan)
        primary = active[0]
        gpu = primary in PV.GPU_PROVIDERS
        if precision == "auto":
            if half is not None:
                precision = "fp16" if half else "fp32"
            else:
                precision = AUTO_GPU_PRECISION if gpu else AUTO_CPU_PRECISION
        if precision == "bf16":
            plan.notes.append("no bf16 graphs for onnxruntime: running the fp32 ones")
            precision = "fp32"
        if precision == "fp16" and not gpu:
            # runs (onnxruntime casts around the half nodes) but is slower than fp32 there
            plan.notes.append("fp16 graphs on the CPU provider run through casts (slow)")
        if precision == "int8" and gpu:
            plan.notes.append("int8 (dynamic quantisation) nodes have CPU kernels only")
        cache = X.ExportCache(cache_dir)
        sources = X.Sources(Path(dit), Path(hift), Path(campplus), content_dir)
        files = cache.ensure(precision_plan(precision, content_dir is not None), sources, progress)
        stages = {}
        for name, path in files.items():
            sess, act = PV.create_session(
                path, plan, fp16=precision == "fp16", threads=threads, cache=cache.root, spin=spin
            )
            PV.check_active(plan, act)
            if name == "dit_step":
                active = act
            stages[name] = _Stage(sess, _io_device(act[0]) if act else "cpu", plan.device_id)
        return cls(stages, plan, active, precision)

    @property
    def provider(self) -> str:
        """What actually runs, e.g. 'CUDA (onnxruntime, fp16)'."""
        primary = self.active[0] if self.active else PV.CPU
        extra = "".join(f"; {t}" for t in self._tags)
        return f"{PV.SHORT.get(primary, primary)} (onnxruntime, {self.precision}{extra})"

    # ---- stages ----------------------------------------------------------------------------
    def _dev(self, a: np.ndarray):
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(_f32(a), self.io_device, self.device_id)

    def _empty(self, shape: tuple[int, ...]):
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_shape_and_type(
            list(shape), np.float32, self.io_device, self.device_id
        )

    def content_features(self, wav22k: Array, on_device: bool = False):
        """22.05 kHz waveform (N,) -> XLS-R features (1, T, 1024) (numpy, or device value)."""
        stage = self.stages.get("content")
        if stage is None:
            raise RuntimeError("no content encoder loaded (XLS-R weights missing)")
        wav = _f32(wav22k).reshape(1, -1)
        out = stage.run({"wav": wav}, host_outputs=() if on_device else ("features",))[0]
        return out if on_device else out.numpy()

    def regulate(self, content, t_out: int, drop: int = 0, on_device: bool = False):
        """Content (1, T, 1024) (host array or device value) -> condition (1, t_out, 384) from
        frames drop.. by legacy nearest interpolation."""
        if isinstance(content, np.ndarray | torch.Tensor):
            content = _f32(content)
            t_in = content.shape[1]
        else:
            t_in = content.shape()[1]
        index = nearest_index(t_in - drop, t_out, drop)
        out = self.stages["lr"].run(
            {"content": content, "index": index}, host_outputs=() if on_device else ("cond",)
        )[0]
        return out if on_device else out.numpy()

    def speaker_style(self, fbank: Array) -> np.ndarray:
        """Mean-normalised fbank (1, T, 80) -> style (1, 192)."""
        return (
            self.stages["campplus"].run({"fbank": _f32(fbank)}, host_outputs=("style",))[0].numpy()
        )

    def solve(
        self,
        prompt_mel: Array,
        prompt_cond: Array,
        style: Array,
        cond,
        steps: int,
        cfg: float,
        noise: Array | None = None,
        return_first_velocity: bool = False,
        on_device: bool = False,
    ):
        """The CFM over the source frames: (1, 80, S) mel after ``steps`` Euler steps.

        ``noise`` (1, 80, P + S) as the torch solver takes it (its prompt frames are unused);
        drawn from the seeded generator when None. ``cond`` may be a device value.
        """
        p = int(np.shape(prompt_mel)[-1])
        s = cond.shape()[1] if not isinstance(cond, np.ndarray | torch.Tensor) else cond.shape[1]
        if noise is None:
            noise = self.cfm.draw(p + s)
        x = self._dev(_f32(noise)[..., p:])
        cond = cond if not isinstance(cond, np.ndarray | torch.Tensor) else _f32(cond)
        pv = self._prompt_device_values(prompt_mel, prompt_cond, style)
        frame_const, style_tok = self.stages["dit_prepare"].run({**pv, "cond": cond})
        g = 2 if cfg > 0 else 1
        fc = _View(frame_const, (g, p + s, 384))
        st = _View(style_tok, (g, 1, 384))
        other, vel = self._empty((1, MEL, s)), self._empty((1, MEL, s))
        cfg_a = np.array([cfg if g == 2 else 0.0], np.float32)
        step = self.stages["dit_step"]
        first = None
        for k, (t, dt) in enumerate(_euler_times(steps)):
            step.run(
                {
                    "x": x,
                    "t": np.array([t], np.float32),
                    "dt": np.array([dt], np.float32),
                    "cfg": cfg_a,
                    "frame_const": fc,
                    "style_tok": st,
                },
                {"x_next": other, "velocity": vel},
            )
            if return_first_velocity and k == 0:
                first = vel.numpy().copy()
            x, other = other, x
        if return_first_velocity:
            return x.numpy(), first
        return x if on_device else x.numpy()

    def _prompt_device_values(self, mel, cond, style) -> dict:
        # the prompt is constant across blocks: upload it once per prompt
        key = (id(mel), id(cond), id(style))
        if key != self._prompt_key:
            self._prompt_values = {
                "prompt_mel": self._dev(_f32(mel)),
                "prompt_cond": self._dev(_f32(cond)),
                "style": self._dev(_f32(style)),
            }
            self._prompt_key = key
            self._prompt_refs = (mel, cond, style)  # keeps the ids valid
        return self._prompt_values

    def vocode(
        self,
        mel,
        phase: Array | None = None,
        noise: Array | None = None,
        frames: int | None = None,
    ) -> np.ndarray:
        """HiFT over the last ``frames`` (default all) frames of mel (1, 80, M) -> (256 F,)."""
        m = mel.shape()[2] if not isinstance(mel, np.ndarray | torch.Tensor) else mel.shape[-1]
        frames = m if frames is None else min(frames, m)
        if phase is None:
            phase = self.vocoder.draw_phase()
        if noise is None:
            noise = self.vocoder.draw_noise(frames * HOP)
        noise = np.ascontiguousarray(_f32(noise)[..., -frames * HOP :])
        mel = mel if not isinstance(mel, np.ndarray | torch.Tensor) else _f32(mel)
        out = self.stages["vocoder"].run(
            {"mel": mel, "phase": _f32(phase), "noise": noise}, host_outputs=("wav",)
        )[0]
        return out.numpy()[0]

    # ---- the SeedVCModel interface ---------------------------------------------------------
    def make_prompt(
        self,
        reference: np.ndarray,
        max_prompt_s: float,
        prompt_content: Array | None = None,
        style_from_prompt: bool = False,
    ) -> Prompt:
        """As SeedVCModel.make_prompt: style from the whole clip (or with ``style_from_prompt``
        from the prompt only, as upstream), prompt from its start."""
        ref = torch.as_tensor(np.ascontiguousarray(reference), dtype=torch.float32).reshape(-1)
        with torch.inference_mode():
            crop = ref[: int(SAMPLE_RATE * max_prompt_s)]
            fbank = mean_normalise(
                kaldi_fbank(resample_22k_to_16k(crop if style_from_prompt else ref))
            )
            mel = mel_spectrogram(crop[None])
        style = self.speaker_style(fbank[None])
        if prompt_content is None:
            prompt_content = self.content_features(crop.numpy())
        cond = self.regulate(prompt_content, mel.shape[-1])
        return Prompt(mel.float(), torch.from_numpy(cond), torch.from_numpy(style))

    def infer_block(
        self,
        window: Array | None,
        prompt: Prompt,
        plan: BlockPlan,
        steps: int,
        cfg: float,
        *,
        content: Array | None = None,
        cfm_noise: Array | None = None,
        hift_phase: Array | None = None,
        hift_noise: Array | None = None,
        vocoder_frames: int | None = None,
    ) -> torch.Tensor:
        """Convert one window (22.05 kHz, (N,)) -> ``plan.out_samples`` samples (as torch)."""
        t = self.timer
        if content is None:
            with t("content"):
                content = self.content_features(window, on_device=True)
        with t("length_regulator"):
            cond = self.regulate(content, plan.mel_frames, plan.drop_frames, on_device=True)
        with t("cfm"):
            mel = self.solve(
                prompt.mel, prompt.cond, prompt.style, cond, steps, cfg, cfm_noise, on_device=True
            )
        with t("vocoder"):
            frames = plan.mel_frames
            if vocoder_frames is not None and vocoder_frames < frames:
                frames = vocoder_frames
            wave = self.vocode(mel, hift_phase, hift_noise, frames)
        end = wave.shape[-1] - plan.right_samples
        return torch.from_numpy(wave[end - plan.out_samples : end])

    def vocoder_frames_for(self, plan: BlockPlan) -> int:
        """Mel frames the vocoder must see to emit the block: what is returned plus margin."""
        return math.ceil((plan.out_samples + plan.right_samples) / HOP) + VOCODER_MARGIN


# --------------------------------------------------------------------------- probing


def probe_providers(plan: PV.ProviderPlan) -> list[str]:
    """Which of the plan's providers load here, found with a one-node model (no export)."""
    import onnxruntime as ort

    if plan.requested == [PV.CPU]:
        return [PV.CPU]
    try:
        model = _identity_model()
    except ImportError:  # no onnx package: the first real session tells instead
        return list(plan.requested)
    if PV.CUDA in plan.requested or PV.TENSORRT in plan.requested:
        PV._preload_cuda()
    providers = [(p, PV.provider_options(p, plan, False, None)) for p in plan.requested]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    said = StringIO()
    try:
        # onnxruntime prints an 'EP Error' banner for each provider it drops: keep it in the log
        with contextlib.redirect_stdout(said):
            sess = ort.InferenceSession(model, so, providers=providers)
        active = list(sess.get_providers())
    except Exception as exc:  # a provider that raises instead of falling back
        log.warning("provider probe failed (%s); using the CPU", exc)
        active = [PV.CPU]
    if said.getvalue().strip():
        log.info("onnxruntime while probing providers: %s", said.getvalue().strip())
    PV.check_active(plan, active)
    return active


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()
