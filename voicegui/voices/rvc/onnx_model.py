"""Running an RVC synthesizer exported to ONNX, whichever tool exported it.

The layout is recognised from the graph's input names (see onnx_export.py): RVC WebUI's
(phone ... rnd), w-okada's (feats, p_len, [pitch, pitchf,] sid, with a ``metadata`` JSON),
deiteris's (w-okada's plus skip_head/return_length/formant_length) and voicegui's own (every
random draw an input). The sample rate comes from the metadata; RVC's export has none, so it is
measured (samples out per frame in) with a short run. fp16 exports get fp16 inputs.

``OnnxSynthesizer.infer`` takes the torch synthesizer's arguments and returns its SynthOutput
(audio only), so the pipelines run either. Layouts without streaming inputs run the whole
window and cut the returned frames out of the audio; a formant stretch needs the streaming
inputs (deiteris or voicegui).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .config import FEATURE_DIMS
from .synthesizer import FLOW_CONTEXT, PRIOR_SCALE, SynthNoise, SynthOutput

RVC_INPUTS = ("phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd")
STREAM_INPUTS = ("skip_head", "return_length", "formant_length")
NOISE_INPUTS = ("z_noise", "sine_noise")
DEFAULT_SEED = 0


class OnnxModelError(RuntimeError):
    """An ONNX file is not an RVC synthesizer we can run; the message says why."""


def _layout(names: list[str]) -> tuple[str, bool]:
    """(layout, pitch-conditioned) from the graph's input names. ``z_noise``/``sine_noise``,
    where present, take the prior's and the sine source's draws (voicegui's own exports have
    them; any layout may)."""
    have = set(names) - set(NOISE_INPUTS)
    if have == set(RVC_INPUTS):
        return "rvc", True
    f0 = {"pitch", "pitchf"} <= have
    pitch = {"pitch", "pitchf"} if f0 else set()
    if have == {"feats", "sid"} | pitch | set(STREAM_INPUTS) and "z_noise" in names:
        return "voicegui", f0
    base = {"feats", "p_len", "sid"} | pitch
    if have == base:
        return "wokada", f0
    if have == base | set(STREAM_INPUTS):
        return "deiteris", f0
    raise OnnxModelError(
        "not an RVC voice model export: its inputs are "
        + ", ".join(names)
        + " (known layouts: RVC's phone/phone_lengths/pitch/pitchf/ds/rnd, w-okada's "
        "feats/p_len/pitch/pitchf/sid, with skip_head/return_length/formant_length for "
        "streaming)"
    )


class OnnxSynthesizer:
    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        seed: int = DEFAULT_SEED,
        sample_rate: int | None = None,
        plan=None,
    ) -> None:
        """``sample_rate``: for files whose metadata lacks it (RVC's exports); measured with a
        short run when not given. ``plan``: the providers to use (a ProviderPlan already probed
        for ``device``; made from ``device`` when not given)."""
        from voicegui.voices.onnx import providers as PV

        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"ONNX model not found: {path}")
        self.path = path
        self.plan = plan if plan is not None else PV.plan_providers(device)
        try:
            self.session, self.providers = PV.create_session(path, self.plan, threads=threads)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if "IR version" in first or "opset" in first.lower():
                raise OnnxModelError(
                    f"{path.name} was written by a newer ONNX than this onnxruntime reads ({first})"
                ) from exc
            raise OnnxModelError(
                f"cannot read {path.name}: the file is truncated or corrupt, or not an ONNX "
                f"model ({first})"
            ) from exc
        PV.check_active(self.plan, self.providers)
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.layout, self.f0 = _layout(self.input_names)
        self._types = {i.name: i.type for i in inputs}
        self._ranks = {i.name: len(i.shape) for i in inputs}
        feat_name = "phone" if self.layout == "rvc" else "feats"
        feat = next(i for i in inputs if i.name == feat_name)
        self.half = feat.type == "tensor(float16)"
        self.metadata = self._read_metadata()
        dim = feat.shape[-1] if isinstance(feat.shape[-1], int) else None
        dim = dim or self.metadata.get("embChannels") or self.metadata.get("feature_dim")
        if dim not in FEATURE_DIMS.values():
            raise OnnxModelError(f"{path.name}: feature input of width {dim}; expected 256 or 768")
        self.feature_dim = int(dim)
        self.inter_channels = int(self.metadata.get("inter_channels", 192))
        if self.layout == "rvc":
            rnd = next(i for i in inputs if i.name == "rnd")
            if isinstance(rnd.shape[1], int):
                self.inter_channels = rnd.shape[1]
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        rate = self.metadata.get("samplingRate") or self.metadata.get("sample_rate") or sample_rate
        self.upp = int(rate) // 100 if rate else self._measure_upp()
        self.sample_rate = self.upp * 100
        self.warnings = list(self.plan.warnings)

    @property
    def version(self) -> str:
        return "v1" if self.feature_dim == 256 else "v2"

    @property
    def streaming_inputs(self) -> bool:
        return self.layout in ("deiteris", "voicegui")

    def _read_metadata(self) -> dict:
        custom = self.session.get_modelmeta().custom_metadata_map
        for key in ("voicegui", "metadata"):
            if key in custom:
                try:
                    meta = json.loads(custom[key])
                except ValueError as exc:
                    raise OnnxModelError(
                        f"{self.path.name}: its '{key}' metadata is not JSON ({exc})"
                    ) from exc
                if isinstance(meta, dict):
                    return meta
        return {}

    def reset_rng(self, seed: int | None = None) -> None:
        self._seed = self._seed if seed is None else seed
        self._rng = np.random.default_rng(self._seed)

    @staticmethod
    def fresh_noise(seed: int) -> tuple[int, np.random.Generator]:
        """A noise source of its own (``infer(rng=...)``; see Synthesizer.fresh_noise)."""
        return seed, np.random.default_rng(seed)

    def _measure_upp(self) -> int:
        frames = 8
        if "sine_noise" in self._types:
            raise OnnxModelError(f"{self.path.name}: no sample rate in its metadata; give it")
        feed = self._feed(
            np.zeros((1, frames, self.feature_dim), np.float32),
            np.full((1, frames), 100, np.int64),
            np.full((1, frames), 200.0, np.float32),
            0,
            None,
            np.zeros((1, self.inter_channels, frames), np.float32),
            None,
        )
        out = self.session.run(["audio"], feed)[0]
        if out.shape[-1] % frames:
            raise OnnxModelError(f"{self.path.name}: {out.shape[-1]} samples for {frames} frames")
        return out.shape[-1] // frames

    def _float(self, name: str, a: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self._types.get(name) == "tensor(float16)" else np.float32
        return np.ascontiguousarray(a, dtype=dtype)

    def _feed(self, feats, pitch, pitchf, sid, stream, z_noise, sine_noise) -> dict:
        frames = feats.shape[1]
        lengths = np.array([frames], np.int64)
        sid_a = np.array([sid], np.int64)
        if self.layout == "rvc":
            feed = {
                "phone": self._float("phone", feats),
                "phone_lengths": lengths,
                "pitch": pitch.astype(np.int64),
                "pitchf": self._float("pitchf", pitchf),
                "ds": sid_a,
                "rnd": self._float("rnd", z_noise * np.float32(PRIOR_SCALE)),
            }
        else:
            feed = {"feats": self._float("feats", feats), "sid": sid_a}
        if self.layout in ("wokada", "deiteris"):
            feed["p_len"] = lengths
        if self.f0 and self.layout != "rvc":
            feed["pitch"] = pitch.astype(np.int64)
            feed["pitchf"] = self._float("pitchf", pitchf)
        if self.streaming_inputs:
            skip, n, n2 = stream
            feed.update(
                skip_head=np.array(skip, np.int64),
                return_length=np.array(n, np.int64),
                formant_length=np.array(n2, np.int64),
            )
        if "z_noise" in self._types and self.layout != "rvc":
            feed["z_noise"] = self._float("z_noise", z_noise)
        if "sine_noise" in self._types:
            shape = (1, -1, 1) if self._ranks["sine_noise"] == 3 else (1, -1)
            feed["sine_noise"] = self._float("sine_noise", sine_noise.reshape(shape))
        return feed

    def infer(
        self,
        phone,
        pitch=None,
        nsff0=None,
        sid: int = 0,
        *,
        skip_head: int | None = None,
        return_length: int | None = None,
        return_length2: int | None = None,
        noise: SynthNoise | None = None,
        rng: tuple | None = None,
    ) -> SynthOutput:
        """As Synthesizer.infer. The prior noise is used by the layouts that take it (RVC's:
        whole window; voicegui's); the sine noise by voicegui's; others draw their own."""
        noise = noise or SynthNoise()
        gen = rng[1] if rng is not None else self._rng
        feats = _np(phone)
        frames = feats.shape[1]
        if self.f0 and (pitch is None or nsff0 is None):
            raise ValueError("this voice model is pitch-conditioned: pass pitch and nsff0")
        streaming = skip_head is not None and return_length is not None
        skip = int(skip_head) if streaming else 0
        n = int(return_length) if streaming else frames
        n2 = int(return_length2) if streaming and return_length2 is not None else n
        if n2 != n and not self.streaming_inputs:
            raise OnnxModelError(
                f"{self.path.name} ({self.layout} layout) has no formant input; a formant "
                f"shift needs the .pth or an export with streaming inputs"
            )
        # the prior's draw has the shape of the encoder's output: the window less the frames
        # before the flow's context when the graph cuts it, the whole window otherwise
        head = max(skip - FLOW_CONTEXT, 0) if streaming and self.streaming_inputs else 0
        z = sine = None
        if self.layout == "rvc" or "z_noise" in self._types:
            z = _np(noise.z) if noise.z is not None else None
            if z is None:
                z = gen.standard_normal((1, self.inter_channels, frames - head))
            z = z.astype(np.float32).reshape(1, self.inter_channels, -1)
            if self.layout == "rvc" and z.shape[-1] < frames:  # a streaming cut's draw
                pad = np.zeros((1, z.shape[1], frames - z.shape[-1]), np.float32)
                z = np.concatenate([pad, z], axis=2)
        if "sine_noise" in self._types:
            sine = _np(noise.sine) if noise.sine is not None else None
            if sine is None:
                sine = gen.standard_normal(n * self.upp).astype(np.float32)
        feed = self._feed(
            feats,
            _np(pitch) if pitch is not None else None,
            _np(nsff0) if nsff0 is not None else None,
            int(sid),
            (skip, n, n2),
            z,
            sine,
        )
        audio = self.session.run(["audio"], feed)[0].astype(np.float32).reshape(1, 1, -1)
        if streaming and not self.streaming_inputs:
            audio = audio[..., skip * self.upp : (skip + n) * self.upp]
        return SynthOutput(audio=torch.from_numpy(audio), m_p=None, logs_p=None, z=None)


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def load_onnx_voice_model(path: str | Path, device: str = "cpu", threads: int | None = None):
    return OnnxSynthesizer(path, device=device, threads=threads)
