"""Silences longer than the server's idle time: the app keeps its stream alive (no blocks go
out while the user is silent); a stream the server forgot anyway starts again quietly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.remote.streaming import RATE, info, remote_voice, windows
from tests.voice_server import IDLE_SECONDS
from voicegui.remote import protocol as P
from voicegui.remote.client import RemoteError

pytestmark = pytest.mark.slow


def test_a_pause_longer_than_the_idle_time(server, kit_inputs):
    wins = windows(kit_inputs["stream_in_22k"], 6)
    kept, forgot = remote_voice(server), remote_voice(server)
    events: list[str] = []
    forgot.set_event_sink(lambda kind, message: events.append(message))
    kept.set_event_sink(lambda kind, message: events.append(message))
    try:
        for v in (kept, forgot):
            assert v.info["idle_seconds"] == IDLE_SECONDS
            v.prepare(kit_inputs["ref_wav_22k"][:RATE], RATE)
            v.convert(wins[0], info(0))
            assert np.abs(v.convert(wins[1], info(1))).max() > 0
        forgot._stop.set()  # its watcher gone: nothing keeps its stream alive (the control)
        sid_kept, sid_forgot = kept._stream, forgot._stream
        time.sleep(IDLE_SECONDS + 2)  # the user is silent: no blocks
        # the kept stream is still the same stream on the server
        assert kept._stream == sid_kept
        kept.convert(wins[3], info(3))  # after a gap: the block before was silence
        assert np.abs(kept.convert(wins[4], info(4))).max() > 0
        assert kept.lost == kept.late == 0 and kept._stream == sid_kept
        # the other one's stream expired: its next blocks fall back while a new one starts,
        # without announcing a lost server (the server is there)
        forgot.convert(wins[3], info(3))
        with pytest.raises(RemoteError) as err:
            forgot.convert(wins[4], info(4))
        assert err.value.code == P.UNKNOWN_STREAM
        t0 = time.monotonic()
        while forgot._stream in (None, sid_forgot):
            assert time.monotonic() - t0 < 30, "the stream was not started again"
            time.sleep(0.1)
        forgot.convert(wins[4], info(4))
        assert np.abs(forgot.convert(wins[5], info(5))).max() > 0
        assert forgot.reconnects == 0 and events == []
    finally:
        kept.close()
        forgot.close()
