"""The server's live streams: state keyed by an id the server issues, dropped at the stream's
end or when idle. Plain data and a lock; nothing here knows the voice."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from voicegui.remote.protocol import BUSY, UNKNOWN_STREAM, ProtocolError


class StreamTable:
    def __init__(
        self,
        max_streams: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_streams, self.idle_seconds, self.clock = max_streams, idle_seconds, clock
        self._streams: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self.expired = 0  # streams dropped for idleness since the server started

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, state: Any) -> str:
        self.expire()
        with self._lock:
            if len(self._streams) >= self.max_streams:
                raise ProtocolError(BUSY, f"the server serves {self.max_streams} streams at most")
            sid = secrets.token_hex(16)  # unguessable: the id is the stream's capability
            self._streams[sid] = (state, self.clock())
        return sid

    def get(self, sid: str) -> Any:
        """The stream's state, marking it active; refused when unknown or expired."""
        now = self.clock()
        with self._lock:
            entry = self._streams.get(sid)
            if entry is None or now - entry[1] > self.idle_seconds:
                self._streams.pop(sid, None)
                raise ProtocolError(UNKNOWN_STREAM, "no such stream (ended, expired or never had)")
            self._streams[sid] = (entry[0], now)
            return entry[0]

    def close(self, sid: str) -> bool:
        with self._lock:
            return self._streams.pop(sid, None) is not None

    def expire(self) -> int:
        now = self.clock()
        with self._lock:
            old = [
                sid for sid, (_, seen) in self._streams.items() if now - seen > self.idle_seconds
            ]
            for sid in old:
                del self._streams[sid]
            self.expired += len(old)
        return len(old)
