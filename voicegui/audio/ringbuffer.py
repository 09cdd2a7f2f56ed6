"""Preallocated single-producer/single-consumer float32 ring.

Safe between one writer thread and one reader thread under the GIL: each side only advances its
own counter, and only after its copy is complete. Counters grow without wrapping (Python ints), so
``available`` is a plain subtraction. No allocation after construction except numpy views.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0  # advanced by the producer only
        self._read = 0  # advanced by the consumer only
        self.overflows = 0  # samples the producer could not store

    def available(self) -> int:
        return self._written - self._read

    def free(self) -> int:
        return self.capacity - self.available()

    def write(self, data: np.ndarray) -> int:
        """Store as much of ``data`` as fits; returns the count stored (overflow is counted)."""
        n = min(len(data), self.free())
        if n < len(data):
            self.overflows += len(data) - n
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = data[:first]
        if n > first:
            self._buf[: n - first] = data[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the ring; returns how many samples were available (<= len(out))."""
        n = min(len(out), self.available())
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if n > first:
            out[first:n] = self._buf[: n - first]
        self._read += n
        return n

    def skip(self, n: int) -> int:
        """Consumer side: discard up to ``n`` samples."""
        n = max(0, min(n, self.available()))
        self._read += n
        return n
