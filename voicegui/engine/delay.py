"""A fixed delay in samples, block by block, in a preallocated buffer (the dry path's, and the
built-in fallback voice's)."""

from __future__ import annotations

import numpy as np


class DelayLine:
    """Fixed delay in samples, processed block by block."""

    def __init__(self, delay: int, block: int) -> None:
        self.delay, self.block = delay, block
        self._buf = np.zeros(delay + block, dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        buf = self._buf
        buf[self.delay :] = x
        out = buf[: self.block].copy()
        buf[: self.delay] = buf[self.block : self.block + self.delay]
        return out
