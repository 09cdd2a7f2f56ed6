"""Reference clips as files: where they go, how they are named and written. No PortAudio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from voicegui import paths

SILENT_PEAK = 1e-4  # a recording whose peak stays below this (-80 dBFS) captured nothing useful


class RecorderError(RuntimeError):
    pass


def references_dir() -> Path:
    path = paths.data_dir() / "references"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_reference_path(stem: str = "reference") -> Path:
    """A fresh, not yet existing file name in the references folder."""
    base = time.strftime(f"{stem}-%Y%m%d-%H%M%S")
    folder = references_dir()
    path, n = folder / f"{base}.wav", 2
    while path.exists():
        path, n = folder / f"{base}-{n}.wav", n + 1
    return path


def save_clip(audio: np.ndarray, sample_rate: int, path: Path | None = None) -> Path:
    """Write a recording as a 16-bit WAV (readable everywhere); returns the path."""
    import soundfile as sf

    if len(audio) == 0:
        raise RecorderError("nothing was recorded")
    path = Path(path) if path is not None else new_reference_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate, subtype="PCM_16")
    return path
