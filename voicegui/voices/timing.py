"""Wall time per stage of a neural voice's block, for ``voicegui bench`` and the stage readout."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch


class Timer:
    """Wall time per stage (synchronising CUDA so the numbers are real)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.samples: dict[str, list[float]] = defaultdict(list)

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self, stage)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self.samples.items():
            v = np.asarray(values)
            out[stage] = {
                "p50_ms": float(np.median(v)),
                "p99_ms": float(np.percentile(v, 99)),
                "mean_ms": float(v.mean()),
                "calls": len(v),
            }
        return out


class _Stage:
    """One timed stage (a context manager); one class for every call, not one per call."""

    __slots__ = ("timer", "stage", "t0")

    def __init__(self, timer: Timer, stage: str) -> None:
        self.timer, self.stage, self.t0 = timer, stage, 0.0

    def __enter__(self) -> None:
        self.timer._sync()
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        timer = self.timer
        timer._sync()
        samples = timer.samples[self.stage]
        samples.append((time.perf_counter() - self.t0) * 1e3)
        if len(samples) > 2000:
            del samples[:1000]
