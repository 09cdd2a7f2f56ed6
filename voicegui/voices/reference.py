"""The reference clip a zero-shot voice (Seed-VC, local or on a server) is given: mono float32,
finite, at the voice's rate and at least half a second long; a clip that is not says why."""

from __future__ import annotations

import numpy as np

from voicegui.voices.base import VoiceError

MIN_SECONDS = 0.5


def mono_reference(reference: np.ndarray | None, voice: str = "Seed-VC") -> np.ndarray:
    """The clip as float32 mono (channels averaged); refused when there is none."""
    if reference is None or len(reference) == 0:
        raise VoiceError(f"{voice} needs a reference clip of the target voice")
    ref = np.asarray(reference, dtype=np.float32)
    return ref.mean(axis=1) if ref.ndim > 1 else ref


def reference_at(ref: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """A mono clip checked and resampled from ``sr`` to ``rate``."""
    if not np.all(np.isfinite(ref)):
        raise VoiceError("the reference clip contains NaN or infinite samples")
    if sr != rate:
        import soxr

        ref = soxr.resample(ref, sr, rate).astype(np.float32)
    if len(ref) < int(MIN_SECONDS * rate):
        raise VoiceError(f"the reference clip is shorter than {MIN_SECONDS:g} s")
    return ref
