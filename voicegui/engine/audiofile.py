"""Reading audio files with clear errors (any soundfile format, float32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioFileError(ValueError):
    """An input file is unreadable, empty or holds non-finite samples."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-readable file as float32 (frames, channels); clear errors if bad."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"input file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(f"cannot read {path.name}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{path.name} is empty (no audio frames)")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioFileError(f"{path.name} contains {bad} NaN or infinite samples")
    return data, int(sr)


def to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1).astype(np.float32) if data.ndim == 2 else data.astype(np.float32)
