"""Sliding analysis window: left context + block + right context, at the voice's rate."""

from __future__ import annotations

import numpy as np


class Framer:
    def __init__(self, block: int, left: int, right: int) -> None:
        self.block, self.left, self.right = block, left, right
        self.window = np.zeros(left + block + right, dtype=np.float32)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Shift the window by one block and append it; returns the whole window (a view)."""
        b = self.block
        w = self.window
        w[:-b] = w[b:]
        w[-b:] = block
        return w

    def resized(self, left: int, right: int) -> Framer:
        """A framer with new context sizes that keeps as much recent history as fits."""
        new = Framer(self.block, left, right)
        keep = min(len(new.window), len(self.window))
        new.window[-keep:] = self.window[-keep:]
        return new

    def reset(self) -> None:
        self.window[:] = 0.0
