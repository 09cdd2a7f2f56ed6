"""The window's Test button: is the server there, does it take the token, how far away is it,
and what does it compute on. Needs only tritonclient (no torch)."""

from __future__ import annotations

import time

import numpy as np

from voicegui.remote.client import Connection, RemoteError

PINGS = 10


def probe(address: str, token: str, ca_file: str | None = None, voice: str = "seedvc") -> dict:
    """{'ok', 'round_trip_ms' (median of a few info calls), 'device', 'provider', ...} or
    {'ok': False, 'error': why}."""
    try:
        conn = Connection(address, token, ca_file or None)
    except RemoteError as exc:
        return {"ok": False, "error": str(exc), "code": exc.code}
    except Exception as exc:  # a bad address
        return {"ok": False, "error": f"cannot connect: {exc}"}
    try:
        times, info = [], {}
        for _ in range(PINGS):
            t0 = time.perf_counter()
            info = conn.call(voice, "info", {}, timeout=5.0)
            times.append((time.perf_counter() - t0) * 1e3)
        return {**info, "ok": True, "round_trip_ms": float(np.median(times))}
    except RemoteError as exc:
        return {"ok": False, "error": str(exc), "code": exc.code}
    finally:
        conn.close()
