"""One real-time block of an RVC voice (RVC's streaming inference), with its economies.

Per block the voice gets a window at the model rate: context + block + right context. It keeps
a 16 kHz copy of the window and resamples only the newest block (plus two frames of margin)
into it; the content encoder sees the whole 16 kHz window; the pitch estimator only its newest
``block + 50 ms`` (RMVPE: rounded up to its 32-frame grid), whose frames join a cache of the
last 1024 frames; the synthesizer encodes the whole window but decodes only the frames the
block needs (``skip_head``/``return_length``), the flow seeing 24 frames before them.

Frame grid: 100 frames/s, ``zc = rate / 100`` samples at the model rate and 160 at 16 kHz. The
window is aligned to it from its end backwards (a window of other length is zero-padded at its
start); the decoded frames cover the samples the engine asked for, which are cut out exactly.

Formant shift: the synthesizer renders ``ceil(n * 2^(formant/12))`` frames for ``n`` and the
result is resampled back to ``n`` frames, which moves the spectral envelope; the f0 is shifted
by (pitch - formant) first and scaled by the frame ratio, so the pitch lands where asked.

Components are callables, so any front end plugs in:

* ``to16k(wav at the model rate (N,)) -> (N * 16000 / rate,)`` float32 tensor;
* ``content(wav16k (1, M)) -> features (1, T, C)`` at 50 frames/s;
* ``pitch(wav16k tail (L,), semitones) -> (coarse int64 (L//160 + 1,), f0 Hz float32)``,
  post-processed (unvoiced filled, shifted, quantised);
* ``resample(wav (N,), from_rate, to_rate)`` for the formant shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from voicegui.voices.timing import Timer

from .f0 import PitchCache
from .index import FeatureIndex, apply_index
from .pipeline import protect_mix, upsample2
from .synthesizer import SynthNoise

SR_16K = 16000
HOP_16K = 160
F0_MARGIN_16K = 800  # the pitch segment reaches 50 ms before the block
RMVPE_GRID = 5120  # RMVPE's segment: a multiple of 32 frames, less one hop
RMS_FLOOR = 1e-3

To16k = Callable[[torch.Tensor], torch.Tensor]
ContentFn = Callable[[torch.Tensor], torch.Tensor]
PitchFn = Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]
ResampleFn = Callable[[torch.Tensor, int, int], torch.Tensor]


@dataclass(frozen=True)
class BlockPlan:
    """Where one block's output sits in the (padded) window, in frames and samples."""

    rate: int
    window: int  # padded window length at the model rate (a multiple of zc)
    block: int  # samples the block advances
    out_start: int  # first output sample in the padded window
    out_len: int  # block + SOLA margin

    @property
    def zc(self) -> int:
        return self.rate // 100

    @property
    def frames(self) -> int:  # p_len: 10 ms frames in the window
        return self.window // self.zc

    @property
    def skip_head(self) -> int:
        return self.out_start // self.zc

    @property
    def return_length(self) -> int:
        return -(-(self.out_start + self.out_len) // self.zc) - self.skip_head

    @property
    def window16k(self) -> int:
        return self.frames * HOP_16K

    @property
    def incremental(self) -> bool:
        """Whether only the new block needs resampling (the block is whole frames)."""
        return self.block % self.zc == 0

    @property
    def block16k(self) -> int:
        return self.block // self.zc * HOP_16K

    def f0_samples(self, rmvpe_grid: bool) -> int:
        n = self.block16k + F0_MARGIN_16K if self.incremental else self.window16k
        if rmvpe_grid:
            n = RMVPE_GRID * ((n - 1) // RMVPE_GRID + 1) - HOP_16K
        return min(n, self.window16k)


def plan_block(
    rate: int, window: int, block: int, left: int, right: int, sola_extra: int
) -> BlockPlan:
    """The plan for a window of ``left + block + right`` samples whose output is the
    ``block + sola_extra`` samples ending ``right`` before its end."""
    zc = rate // 100
    if rate % 100:
        raise ValueError(f"model rate {rate} is not a multiple of 100 Hz")
    pad = (-window) % zc
    out_len = block + sola_extra
    out_start = pad + window - right - out_len
    if out_start < 0:
        raise ValueError("the window is shorter than the block plus its SOLA margin")
    return BlockPlan(rate, window + pad, block, out_start, out_len)


def rms_frames(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS of centred frames (zero padding), float32 in, float32 out."""
    from .pipeline import frame_rms

    return frame_rms(np.asarray(x, dtype=np.float32), frame, hop)


def loudness_gain(source: np.ndarray, out: np.ndarray, zc: int, rate: float) -> np.ndarray:
    """(rms_in / max(rms_out, 1e-3))^(1 - rate) per output sample: 40 ms frames every 10 ms,
    stretched to len(out) + 1 points (ends aligned) and the last dropped."""
    n = out.shape[0]

    def envelope(x: np.ndarray) -> torch.Tensor:
        rms = torch.from_numpy(rms_frames(x, 4 * zc, zc))
        stretched = torch.nn.functional.interpolate(
            rms.unsqueeze(0), size=n + 1, mode="linear", align_corners=True
        )
        return stretched[0, 0, :-1]

    rms_in = envelope(source[:n])
    rms_out = torch.max(envelope(out), torch.zeros(n) + RMS_FLOOR)
    return torch.pow(rms_in / rms_out, torch.tensor(1 - rate)).numpy()


@dataclass
class StreamParams:
    pitch: float = 0.0  # semitones
    formant: float = 0.0  # semitones
    index_rate: float = 0.0
    protect: float = 0.5  # 0.5 and above: off
    rms_mix_rate: float = 1.0  # 1: the model's loudness; 0: the input's envelope
    speaker: int = 0


@dataclass
class BlockTrace:
    """What one block computed (for tests and diagnostics)."""

    ring16k: torch.Tensor | None = None
    feats: torch.Tensor | None = None
    pitch: torch.Tensor | None = None
    pitchf: torch.Tensor | None = None
    synth_out: torch.Tensor | None = None
    infer_wav: torch.Tensor | None = None
    gain: np.ndarray | None = None


class RvcStream:
    """The per-stream state (16 kHz window, pitch cache) and the per-block computation."""

    def __init__(
        self,
        synth,
        to16k: To16k,
        content: ContentFn,
        pitch: PitchFn | None,
        resample: ResampleFn | None = None,
        index: FeatureIndex | None = None,
        rmvpe_grid: bool = True,
    ) -> None:
        self.synth = synth
        self.to16k, self.content, self.pitch_fn, self.resample = to16k, content, pitch, resample
        self.index = index
        self.rmvpe_grid = rmvpe_grid
        self.params = StreamParams()
        self.noise = None  # the stream's own noise source (reset_noise); None: the model's
        self.cache = PitchCache()
        self.ring: torch.Tensor | None = None
        self.trace = BlockTrace()
        self.timer = Timer()  # wall time per stage, for the bench's and the window's readouts
        if synth.f0 and pitch is None:
            raise ValueError("this voice model is pitch-conditioned: give a pitch estimator")
        dim = getattr(synth, "feature_dim", None) or synth.config.feature_dim
        if index is not None and index.dim != dim:
            raise ValueError(
                f"the index holds {index.dim}-d vectors but the model takes {dim}-d features "
                f"(a v1 model needs the v1 index, a v2 model the v2 one)"
            )

    @property
    def rate(self) -> int:
        return self.synth.sample_rate

    def reset(self) -> None:
        self.ring = None
        self.cache.reset()

    def reset_noise(self, seed: int) -> None:
        """Draw this stream's noise from its own generators, seeded: streams sharing one model
        (a server's) then draw what each would draw alone."""
        self.noise = self.synth.fresh_noise(seed)

    def _update_ring(self, window: torch.Tensor, plan: BlockPlan) -> torch.Tensor:
        """Bring the 16 kHz window up to date. A stream starts from silence (as the engine's
        window does) and then resamples only the new block, with two frames of margin whose
        first is dropped; a block of fractional frames resamples the whole window."""
        resized = self.ring is not None and self.ring.shape[0] != plan.window16k
        if not plan.incremental or resized:  # (a new geometry keeps the window's history)
            self.ring = self.to16k(window).float().reshape(-1)[: plan.window16k].clone()
            if self.ring.shape[0] != plan.window16k:
                raise ValueError("the 16 kHz resampler returned a wrong length")
            return self.ring
        if self.ring is None:
            self.ring = torch.zeros(plan.window16k)
        b16, zc = plan.block16k, plan.zc
        fresh = self.to16k(window[-(plan.block + 2 * zc) :]).float().reshape(-1)[HOP_16K:]
        if fresh.shape[0] != b16 + HOP_16K:
            raise ValueError("the 16 kHz resampler returned a wrong length")
        ring = self.ring
        ring[:-b16] = ring[b16:].clone()
        ring[-fresh.shape[0] :] = fresh
        return ring

    def infer(
        self, window: np.ndarray, plan: BlockPlan, noise: SynthNoise | None = None
    ) -> np.ndarray:
        """window (len = plan.window - padding) at the model rate -> the block's output
        (plan.out_len samples)."""
        p = self.params
        wav = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
        pad = plan.window - wav.shape[0]
        if pad:
            wav = torch.nn.functional.pad(wav, (pad, 0))
        t = self.timer
        with t("resample"):
            ring = self._update_ring(wav, plan)
        trace = BlockTrace(ring16k=ring.clone())
        with t("content"):
            feats = self.content(ring[None])
        feats = torch.cat([feats, feats[:, -1:]], dim=1)  # one more frame for the x2 cut
        skip_head, n, frames = plan.skip_head, plan.return_length, plan.frames
        raw = feats.clone() if p.protect < 0.5 and self.synth.f0 else None
        if self.index is not None and p.index_rate > 0:
            with t("index"):
                feats = apply_index(feats[0], self.index, p.index_rate, skip_head // 2)[None]
        trace.feats = feats
        phone = upsample2(feats)[:, :frames]
        factor = 2 ** (p.formant / 12)
        n2 = math.ceil(n * factor)
        pitch = pitchf = None
        if self.synth.f0:
            seg = ring[-plan.f0_samples(self.rmvpe_grid) :]
            with t("f0"):
                coarse, f0 = self.pitch_fn(seg, p.pitch - p.formant)
            self.cache.push(coarse, f0, plan.block16k // HOP_16K if plan.incremental else 0)
            pitch, pitchf = self.cache.tail(frames, n2, n)
            trace.pitch, trace.pitchf = pitch, pitchf
        if raw is not None:
            phone = protect_mix(phone, upsample2(raw)[:, :frames], pitchf, p.protect)
        with t("synth"):
            out = (
                self.synth.infer(
                    phone,
                    pitch,
                    pitchf,
                    p.speaker,
                    skip_head=skip_head,
                    return_length=n,
                    return_length2=n2,
                    noise=noise,
                    rng=self.noise,
                )
                .audio[0, 0]
                .float()
                .cpu()
            )
        trace.synth_out = out
        upp_res = int(np.floor(factor * self.rate // 100))
        if upp_res != plan.zc:
            if self.resample is None:
                raise ValueError("a formant shift needs a resampler")
            out = self.resample(out[: n * upp_res], upp_res, plan.zc)
        trace.infer_wav = out
        start = plan.out_start - skip_head * plan.zc
        wav_out = out.float().numpy()[start : start + plan.out_len]
        if p.rms_mix_rate < 1:
            src = wav.numpy()[plan.out_start : plan.out_start + plan.out_len]
            trace.gain = loudness_gain(src, wav_out, plan.zc, p.rms_mix_rate)
            wav_out = wav_out * trace.gain
        self.trace = trace
        return wav_out
