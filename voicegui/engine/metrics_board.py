"""Metrics across the process boundary: the audio host writes, the window reads, in shared memory.

One segment holds the graph's history (the same arrays ``Metrics`` keeps), the block count and
the newest ``MetricsSnapshot`` (pickled). A sequence number makes each copy consistent without a
lock: the writer makes it odd while writing and even when done; a reader that sees it change (or
odd) reads again. Neither side ever waits for the other.
"""

from __future__ import annotations

import pickle
import struct
import time
from dataclasses import replace
from multiprocessing import shared_memory

import numpy as np

from voicegui.engine.metrics import HISTORY, Metrics, MetricsSnapshot, newest_records

_HEADER = struct.Struct("<QQI")  # sequence, block count, snapshot length
_FIELDS = Metrics.FIELDS
_HIST_BYTES = len(_FIELDS) * HISTORY * 8
_SNAP_MAX = 1 << 16
SIZE = _HEADER.size + _HIST_BYTES + _SNAP_MAX


class MetricsBoard:
    """The shared segment. ``create=True`` on the window's side, which owns (and unlinks) it."""

    def __init__(self, name: str | None = None, create: bool = False) -> None:
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=SIZE if create else 0)
        self.owner = create
        # the window owns the segment and unlinks it; the host (spawned: it shares the window's
        # resource tracker) only attaches, and the tracker frees it if the window is killed
        buf = self.shm.buf
        self._hist = np.ndarray(
            (len(_FIELDS), HISTORY), dtype=np.float64, buffer=buf, offset=_HEADER.size
        )
        self._snap_at = _HEADER.size + _HIST_BYTES
        self._seq = 0
        self._copied: tuple[int, int] = (-1, -1)  # (id of the Metrics, records copied so far)

    @property
    def name(self) -> str:
        return self.shm.name

    # ---- writer (the audio host) -------------------------------------------------------------
    def publish(self, metrics: Metrics) -> None:
        snap = metrics.snapshot
        data = pickle.dumps(snap, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > _SNAP_MAX:  # a huge error text: keep the numbers, cut the text
            short = replace(snap, last_error=snap.last_error[:2000], status=snap.status[:2000])
            data = pickle.dumps(short, protocol=pickle.HIGHEST_PROTOCOL)
        buf = self.shm.buf
        self._seq += 1  # odd: writing
        _HEADER.pack_into(buf, 0, self._seq, metrics.count, len(data))
        # only the records written since the last publish (all of them for another Metrics)
        start = self._copied[1] if self._copied[0] == id(metrics) else 0
        end = metrics.count
        if end - start >= HISTORY or start > end:
            idx: slice | np.ndarray = slice(None)
        else:
            idx = np.arange(start, end) % HISTORY
        for i, name in enumerate(_FIELDS):
            self._hist[i][idx] = metrics._hist[name][idx]
        self._copied = (id(metrics), end)
        buf[self._snap_at : self._snap_at + len(data)] = data
        self._seq += 1  # even: consistent
        _HEADER.pack_into(buf, 0, self._seq, metrics.count, len(data))

    def close(self) -> None:
        self._hist = None  # type: ignore[assignment]
        try:
            self.shm.close()
            if self.owner:
                self.shm.unlink()
        except Exception:
            pass


class MetricsView:
    """The window's read-only view, with the reader side of ``Metrics``' interface."""

    def __init__(self, board: MetricsBoard) -> None:
        self.board = board
        self._snapshot = MetricsSnapshot()
        self._count = 0
        self._hist = np.zeros((len(_FIELDS), HISTORY), dtype=np.float64)
        self._seen = -1

    def refresh(self) -> None:
        """Copy the newest consistent state (a few retries; keeps the old one if it cannot)."""
        board = self.board
        buf = board.shm.buf
        for _ in range(20):
            seq, count, n = _HEADER.unpack_from(buf, 0)
            if seq == self._seen:
                return
            if seq % 2:
                time.sleep(0.0002)
                continue
            hist = board._hist.copy()
            data = bytes(buf[board._snap_at : board._snap_at + n])
            if _HEADER.unpack_from(buf, 0)[0] != seq:
                continue
            try:
                snap = pickle.loads(data) if n else MetricsSnapshot()
            except Exception:
                continue
            self._snapshot, self._count, self._hist, self._seen = snap, count, hist, seq
            return

    @property
    def snapshot(self) -> MetricsSnapshot:
        return self._snapshot

    @property
    def count(self) -> int:
        return self._count

    def history(self, last: int = HISTORY) -> dict[str, np.ndarray]:
        rows = {name: self._hist[i] for i, name in enumerate(_FIELDS)}
        return newest_records(rows, self._count, last)

    def compute_percentiles(self, last: int = HISTORY) -> dict[str, float]:
        return Metrics.percentiles_of(self.history(last)["compute_ms"])
