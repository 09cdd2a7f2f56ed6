"""SOLA: find where a new block lines up best with the tail of the previous one, then crossfade.

Windowed voices regenerate their output from scratch every block, so consecutive outputs do not
join sample-exactly. Searching a small offset that maximises the normalised cross-correlation with
the previous tail, and crossfading over that overlap, removes the click at the block boundary.
"""

from __future__ import annotations

import numpy as np


def equal_power_fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """sin^2 fade-in and its complement (sums to 1, smooth at both ends)."""
    if n <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    fade_in = (np.sin(0.5 * np.pi * np.linspace(0.0, 1.0, n)) ** 2).astype(np.float32)
    return fade_in, (1.0 - fade_in).astype(np.float32)


def best_offset(head: np.ndarray, tail: np.ndarray, search: int) -> int:
    """Offset in [0, search] of ``tail`` inside ``head`` with the highest normalised correlation."""
    n = len(tail)
    if search <= 0 or n == 0:
        return 0
    seg = head[: n + search].astype(np.float64)
    num = np.correlate(seg, tail.astype(np.float64), mode="valid")
    energy = np.convolve(seg * seg, np.ones(n), mode="valid")
    score = num / np.sqrt(energy + 1e-8)
    return int(np.argmax(score))


class Sola:
    """Keeps the previous tail and splices each new voice output onto it."""

    def __init__(self, block: int, crossfade: int, search: int) -> None:
        self.block, self.crossfade, self.search = block, crossfade, search
        self.fade_in, self.fade_out = equal_power_fades(crossfade)
        self.tail = np.zeros(crossfade, dtype=np.float32)
        self.has_tail = False
        self.last_offset = search // 2

    @property
    def input_length(self) -> int:
        """Samples a voice must return: search margin + block + crossfade tail."""
        return self.search + self.block + self.crossfade

    def reset(self) -> None:
        self.tail[:] = 0.0
        self.has_tail = False

    def splice(self, out: np.ndarray) -> np.ndarray:
        """``out`` has ``input_length`` samples; returns ``block`` samples joined to the last."""
        c = self.crossfade
        if self.has_tail and float(np.dot(self.tail, self.tail)) > 1e-10 * max(1, c):
            offset = best_offset(out, self.tail, self.search)
        else:
            # nothing to match (start, or silence): take the middle, so the latency stays nominal
            offset = self.search // 2
        self.last_offset = offset
        block = out[offset : offset + self.block].copy()
        if c:
            block[:c] = block[:c] * self.fade_in + self.tail * self.fade_out
            self.tail[:] = out[offset + self.block : offset + self.block + c]
        self.has_tail = True
        return block
