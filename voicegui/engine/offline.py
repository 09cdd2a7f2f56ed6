"""File -> file through the same BlockProcessor as the live path, on a virtual clock.

The output has the input's length and the live path's timing: nothing comes out during the first
block (it is still being captured), then each converted block follows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicegui.engine.audiofile import AudioFileError, read_audio, to_mono
from voicegui.engine.metrics import Metrics
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings
from voicegui.voices.base import Voice

__all__ = ["AudioFileError", "convert_array", "convert_file", "read_audio", "run_blocks", "to_mono"]


def run_blocks(proc: BlockProcessor, x: np.ndarray) -> np.ndarray:
    """Feed ``x`` block by block; returns the live-timed output, same length as ``x``."""
    b = proc.block_dev
    n = len(x)
    nblocks = -(-n // b)
    padded = np.zeros(nblocks * b, dtype=np.float32)
    padded[:n] = x
    out = np.zeros((nblocks + 1) * b, dtype=np.float32)
    for i in range(nblocks):
        out[(i + 1) * b : (i + 2) * b] = proc.process(padded[i * b : (i + 1) * b])
    return out[:n]


def convert_array(
    x: np.ndarray, sr: int, voice: Voice, settings: Settings, metrics: Metrics | None = None
) -> tuple[np.ndarray, BlockProcessor]:
    proc = BlockProcessor(voice, settings, sr, metrics)
    return run_blocks(proc, to_mono(x)), proc


def convert_file(src: str | Path, dst: str | Path, voice: Voice, settings: Settings) -> dict:
    import soundfile as sf

    data, sr = read_audio(src)
    y, proc = convert_array(data, sr, voice, settings)
    channels = data.shape[1]
    sf.write(
        str(dst),
        np.repeat(y[:, None], channels, axis=1) if channels > 1 else y,
        sr,
        subtype="FLOAT" if str(dst).lower().endswith(".wav") else None,
    )
    return {
        "input": str(src),
        "output": str(dst),
        "sample_rate": sr,
        "channels": channels,
        "seconds": len(y) / sr,
        "latency": proc.latency().as_dict(),
        "voice_errors": proc.voice_errors,
        "compute": proc.metrics.compute_percentiles(),
    }
