"""f0 post-processing for RVC: fill unvoiced frames, shift by semitones, quantise to coarse pitch.

RVC's synthesizer takes two pitch inputs per 10 ms frame: the continuous f0 in Hz (the sine
source) and a coarse pitch 1..255 (an embedding index) on a mel-like scale between 50 and
1100 Hz. Upstream computes them in two precisions and both are kept, bit for bit:

- real time: fill and shift in numpy in the raw f0's dtype, quantise in float32 torch
  (``torch.round``, half to even); returns (int64 coarse, float32 f0);
- offline: everything in numpy in the raw f0's dtype (``np.rint``); returns (int32 coarse, f0).

Unvoiced frames (0 Hz) are filled by linear interpolation over the voiced ones *before* the
shift, so a model's f0 reaches the synthesizer voiced everywhere unless the whole segment is
unvoiced (then it stays 0, which the synthesizer treats as unvoiced).

:class:`PitchCache` keeps the last 1024 frames of both pitch inputs across real-time blocks, as
upstream's streaming loop does, so only the new tail of each block goes through the f0 model.
"""

from __future__ import annotations

import math

import numpy as np
import torch

F0_MIN = 50.0  # Hz at coarse pitch 1
F0_MAX = 1100.0  # Hz at coarse pitch 255
COARSE_BINS = 255
MEL_MIN = 1127 * np.log(1 + F0_MIN / 700)
MEL_MAX = 1127 * np.log(1 + F0_MAX / 700)
CACHE_FRAMES = 1024
HOP_16K = 160  # samples per f0 frame at 16 kHz


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Copy of ``f0`` with every 0 replaced by linear interpolation over the voiced frames;
    the edges take the nearest voiced value. An all-unvoiced segment comes back unchanged."""
    f0 = np.array(f0, copy=True)
    uv = f0 == 0
    if uv.any() and not uv.all():
        f0[uv] = np.interp(np.flatnonzero(uv), np.flatnonzero(~uv), f0[~uv])
    return f0


def semitone_factor(semitones: float) -> float:
    return math.pow(2, semitones / 12)


def shift(f0: np.ndarray, semitones: float) -> np.ndarray:
    """f0 times 2^(semitones/12), in the array's own dtype."""
    return f0 * semitone_factor(semitones)


def quantise_torch(f0: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Real-time quantisation in float32 torch: (coarse int64, f0 float32), both 1-D."""
    if not torch.is_tensor(f0):
        f0 = torch.from_numpy(np.ascontiguousarray(f0))
    f0 = f0.float().reshape(-1)
    mel = 1127 * torch.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - MEL_MIN) * (COARSE_BINS - 1) / (MEL_MAX - MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > COARSE_BINS] = COARSE_BINS
    return torch.round(mel).long(), f0


def quantise_numpy(f0: np.ndarray) -> np.ndarray:
    """Offline quantisation in numpy in ``f0``'s dtype: coarse int32."""
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - MEL_MIN) * (COARSE_BINS - 1) / (MEL_MAX - MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > COARSE_BINS] = COARSE_BINS
    return np.rint(mel).astype(np.int32)


def pitch_realtime(raw_f0: np.ndarray, semitones: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's real-time post-processing: (coarse int64, f0 float32) tensors."""
    return quantise_torch(shift(fill_unvoiced(np.asarray(raw_f0).reshape(-1)), semitones))


def pitch_offline(raw_f0: np.ndarray, semitones: float) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's offline post-processing: (coarse int32, f0 in the raw f0's dtype)."""
    f0 = shift(fill_unvoiced(np.asarray(raw_f0).reshape(-1)), semitones)
    return quantise_numpy(f0), f0


def formant_factor(formant_semitones: float) -> float:
    """Frequency factor of a formant shift; the synthesizer then renders ``ceil(n * factor)``
    frames for ``n`` and the result is resampled back, which moves the formants."""
    return semitone_factor(formant_semitones)


def realtime_key(pitch_semitones: float, formant_semitones: float) -> float:
    """The key the f0 is shifted by in real time: a formant shift moves the rendering rate,
    which moves the pitch along, so the f0 is pre-shifted the other way."""
    return pitch_semitones - formant_semitones


class PitchCache:
    """The last ``size`` frames of coarse pitch and f0 across real-time blocks.

    Each block the f0 model sees only the last ``block + 800`` samples (or so) of the 16 kHz
    window; its frames 3..-1 replace the cache's newest frames after the cache moved left by the
    block's frames. The first and the last frames of that short segment are dropped because
    their STFT frames reach past the segment's edges.
    """

    def __init__(self, size: int = CACHE_FRAMES, device: torch.device | str = "cpu") -> None:
        self.size = size
        self.pitch = torch.zeros(size, dtype=torch.long, device=device)
        self.pitchf = torch.zeros(size, dtype=torch.float32, device=device)

    def reset(self) -> None:
        self.pitch.zero_()
        self.pitchf.zero_()

    def push(self, pitch: torch.Tensor, pitchf: torch.Tensor, shift_frames: int) -> None:
        """Move left by ``shift_frames`` and write ``pitch[3:-1]`` at ``[4 - len(pitch):]``
        (``pitch``/``pitchf``: the segment's frames, any shape holding them in order)."""
        pitch, pitchf = pitch.reshape(-1), pitchf.reshape(-1)
        n = pitch.shape[0]
        if not 4 < n <= self.size or not 0 <= shift_frames < self.size:
            raise ValueError(f"cannot cache {n} pitch frames shifted by {shift_frames}")
        if shift_frames:
            self.pitch[:-shift_frames] = self.pitch[shift_frames:].clone()
            self.pitchf[:-shift_frames] = self.pitchf[shift_frames:].clone()
        self.pitch[4 - n :] = pitch[3:-1]
        self.pitchf[4 - n :] = pitchf[3:-1]

    def tail(
        self, frames: int, return_length2: int = 1, return_length: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, frames) coarse pitch and f0 for the synthesizer. Under a formant shift the
        synthesizer renders ``return_length2`` frames for ``return_length``; the f0 is scaled by
        their ratio, multiplied then divided in float32 as upstream does (``x * a / b`` can
        differ from ``x * (a / b)`` in the last bit)."""
        # copies: the cache moves under them on the next push
        return self.pitch[None, -frames:].clone(), self.pitchf[
            None, -frames:
        ] * return_length2 / return_length
