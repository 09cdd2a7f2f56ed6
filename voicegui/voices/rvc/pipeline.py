"""Offline conversion of a whole recording with an RVC voice model (RVC's file pipeline).

16 kHz input -> 48 Hz high-pass (order-5 Butterworth, forward-backward) -> reflect-padded by
``x_pad`` seconds -> pitch over the whole padded signal -> for each chunk: content features,
index blend, x2 nearest upsampling, protect, synthesizer -> the padding trimmed from each
chunk's output -> the chunks joined -> optional loudness envelope of the input (rms mix) ->
int16 with the peak held at 0.99.

Recordings longer than ``x_max`` seconds are cut into chunks near every ``x_center`` seconds,
at the quietest 10 ms within +-``x_query`` seconds, each chunk with ``x_pad`` seconds of context
on both sides.

The content encoder and the pitch estimator are callables, so any implementation (and any f0
method) plugs in:

* ``content(audio16k float32 (N,)) -> features (1, T, C)`` at 50 frames/s;
* ``pitch(audio16k float32 (N,), frames) -> (coarse (>= frames,), f0 Hz (>= frames,))`` at
  100 frames/s, already shifted by the user's key and post-processed (fill, quantise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .index import FeatureIndex, apply_index
from .synthesizer import SynthNoise

SR_16K = 16000
HOP_16K = 160  # samples per pitch frame (100 frames/s)
HIGHPASS_HZ = 48
HIGHPASS_ORDER = 5
PEAK = 0.99

ContentEncoder = Callable[[np.ndarray], torch.Tensor]
PitchEstimator = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class OfflineSettings:
    index_rate: float = 0.75
    protect: float = 0.33  # 0.5 and above: off
    rms_mix_rate: float = 0.25  # 1: the model's own loudness; 0: the input's envelope
    speaker: int = 0
    # chunking, seconds (RVC's CPU values)
    x_pad: float = 1.0
    x_query: float = 6.0
    x_center: float = 38.0
    x_max: float = 41.0


def highpass(audio: np.ndarray) -> np.ndarray:
    """48 Hz high-pass, zero phase (float64)."""
    from scipy import signal

    b, a = signal.butter(N=HIGHPASS_ORDER, Wn=HIGHPASS_HZ, btype="high", fs=SR_16K)
    return signal.filtfilt(b, a, np.asarray(audio, dtype=np.float64))


def chunk_starts(audio: np.ndarray, settings: OfflineSettings) -> list[int]:
    """Cut points (16 kHz samples) of a long recording: near every x_center seconds, the
    quietest 10 ms window within +-x_query seconds. None for a recording up to x_max."""
    window = HOP_16K
    padded = np.pad(audio, (window // 2, window // 2), mode="reflect")
    if padded.shape[0] <= int(SR_16K * settings.x_max):
        return []
    level = np.zeros_like(audio)
    for i in range(window):  # sum of |x| over each 10 ms window
        level += np.abs(padded[i : i - window])
    query, center = int(SR_16K * settings.x_query), int(SR_16K * settings.x_center)
    cuts = []
    for t in range(center, audio.shape[0], center):
        seg = level[t - query : t + query]
        cuts.append(t - query + int(np.flatnonzero(seg == seg.min())[0]))
    return cuts


def upsample2(feats: torch.Tensor) -> torch.Tensor:
    """(1, T, C) at 50 frames/s -> (1, 2T, C) at 100 frames/s, nearest."""
    return F.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)


def protect_mix(feats: torch.Tensor, raw: torch.Tensor, f0: torch.Tensor, protect: float):
    """Where f0 < 1 Hz (unvoiced), keep ``protect`` of the retrieved features and the rest of
    the raw ones (consonants and breaths keep their own sound); voiced frames unchanged."""
    w = f0.clone()
    w[f0 > 0] = 1
    w[f0 < 1] = protect
    w = w.unsqueeze(-1)
    return (feats * w + raw * (1 - w)).to(raw.dtype)


def frame_rms(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS of centred frames (zero padding of frame//2 on both sides), (1, n_frames)."""
    x = np.pad(x, (frame // 2, frame // 2), mode="constant")
    n = 1 + (x.shape[0] - frame) // hop
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(frame, n), strides=(x.strides[0], x.strides[0] * hop), writeable=False
    )
    return np.sqrt(np.mean(np.square(frames), axis=-2, keepdims=True))


def rms_envelope(x: np.ndarray, sr: int, n: int) -> torch.Tensor:
    """RMS over half-second frames every quarter second, linearly stretched to n samples."""
    rms = frame_rms(x, sr // 2 * 2, sr // 2)
    return F.interpolate(torch.from_numpy(rms).unsqueeze(0), size=n, mode="linear").squeeze()


def rms_gain(source16k: np.ndarray, out: np.ndarray, out_sr: int, rate: float) -> np.ndarray:
    """rms_in^(1-rate) * rms_out^(rate-1) per output sample (rms_out floored at 1e-6)."""
    n = out.shape[0]
    rms_in = rms_envelope(source16k, SR_16K, n)
    rms_out = rms_envelope(out, out_sr, n)
    rms_out = torch.max(rms_out, torch.zeros_like(rms_out) + 1e-6)
    gain = torch.pow(rms_in, torch.tensor(1 - rate)) * torch.pow(rms_out, torch.tensor(rate - 1))
    return gain.numpy()


def mix_rms(source16k: np.ndarray, out: np.ndarray, out_sr: int, rate: float) -> np.ndarray:
    """``out`` with the input's loudness envelope mixed in: rate 1 keeps the model's own,
    rate 0 follows the input's."""
    out = out.copy()
    out *= rms_gain(source16k, out, out_sr, rate)
    return out


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 -> int16 (truncated), scaled down when the peak exceeds 0.99."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = np.float32(np.abs(audio).max()) / np.float32(PEAK)
    scale = np.float32(32768)
    if peak > 1:
        scale = scale / peak
    return (audio * scale).astype(np.int16)


class OfflinePipeline:
    """One voice model (+ optional index) with a content encoder and a pitch estimator."""

    def __init__(
        self,
        synthesizer,
        content: ContentEncoder,
        pitch: PitchEstimator | None = None,
        index: FeatureIndex | None = None,
        settings: OfflineSettings | None = None,
    ) -> None:
        self.synth = synthesizer
        self.content = content
        self.pitch = pitch
        self.index = index
        self.settings = settings or OfflineSettings()
        if self.synth.f0 and pitch is None:
            raise ValueError("this voice model is pitch-conditioned: give a pitch estimator")

    @property
    def sample_rate(self) -> int:
        return self.synth.sample_rate

    def pad_input(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(high-passed input (float64), it reflect-padded by x_pad seconds)."""
        audio = highpass(audio16k)
        pad = int(SR_16K * self.settings.x_pad)
        return audio, np.pad(audio, (pad, pad), mode="reflect")

    def convert(
        self,
        audio16k: np.ndarray,
        noise: Callable[[int], SynthNoise | None] | None = None,
    ) -> np.ndarray:
        """16 kHz mono float -> float32 audio at the model rate (before the int16 step).

        ``noise(i)``: the random draws of chunk i's synthesizer call (None: the model's own).
        """
        s = self.settings
        audio, audio_pad = self.pad_input(audio16k)
        t_pad = int(SR_16K * s.x_pad)
        t_pad_out = int(self.sample_rate * s.x_pad)
        frames = audio_pad.shape[0] // HOP_16K
        pitch = pitchf = None
        if self.synth.f0:
            coarse, f0 = self.pitch(audio_pad.astype(np.float32), frames)
            if len(coarse) < frames or len(f0) < frames:
                raise ValueError(
                    f"the pitch estimator gave {min(len(coarse), len(f0))} frames for "
                    f"{frames} (one per {HOP_16K} samples at 16 kHz)"
                )
            pitch = torch.as_tensor(np.asarray(coarse)[:frames], dtype=torch.long)[None]
            pitchf = torch.as_tensor(np.asarray(f0)[:frames].astype(np.float32))[None]
        bounds = [0]
        for t in chunk_starts(audio, s):
            bounds.append(t // HOP_16K * HOP_16K)
        pieces = []
        for i, start in enumerate(bounds):
            last = i == len(bounds) - 1
            end = None if last else bounds[i + 1] + 2 * t_pad + HOP_16K
            f_end = None if last else (bounds[i + 1] + 2 * t_pad) // HOP_16K
            f_start = start // HOP_16K
            out = self.convert_chunk(
                audio_pad[start:end],
                None if pitch is None else pitch[:, f_start:f_end],
                None if pitchf is None else pitchf[:, f_start:f_end],
                noise(i) if noise is not None else None,
            )
            pieces.append(out[t_pad_out:-t_pad_out])
        result = np.concatenate(pieces)
        if s.rms_mix_rate != 1:
            result = mix_rms(audio, result, self.sample_rate, s.rms_mix_rate)
        return result

    def convert_chunk(self, chunk, pitch, pitchf, noise: SynthNoise | None) -> np.ndarray:
        """One padded chunk (16 kHz) -> the synthesizer's output for it (float32)."""
        s = self.settings
        feats = self.content(np.asarray(chunk, dtype=np.float32))
        protect = s.protect < 0.5 and pitch is not None
        raw = feats.clone() if protect else None
        if self.index is not None and s.index_rate > 0:
            feats = apply_index(feats[0], self.index, s.index_rate, incomplete="ignore")[None]
        feats = upsample2(feats)
        frames = chunk.shape[0] // HOP_16K
        if feats.shape[1] < frames:
            frames = feats.shape[1]
            if pitch is not None:
                pitch, pitchf = pitch[:, :frames], pitchf[:, :frames]
        feats = feats[:, :frames]
        if protect:
            feats = protect_mix(feats, upsample2(raw)[:, :frames], pitchf, s.protect)
        out = self.synth.infer(feats, pitch, pitchf, s.speaker, noise=noise)
        return out.audio[0, 0].float().cpu().numpy()

    def convert_int16(self, audio16k: np.ndarray, noise=None) -> np.ndarray:
        return to_int16(self.convert(audio16k, noise))
