"""The server dies mid-stream: the engine plays the dry fallback (counted), the voice says the
server is lost, reconnects by itself when it is back, says so, and the voice returns."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.remote.streaming import PARAMS, RATE, remote_voice
from tests.seedvc.conftest import STREAM
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings, with_changes

pytestmark = pytest.mark.slow
RECONNECT_TIMEOUT = 180.0


def test_server_killed_mid_stream(server, kit_inputs):
    voice = remote_voice(server)
    events: list[tuple[str, str]] = []
    voice.set_event_sink(lambda kind, message: events.append((kind, message)))
    voice.prepare(kit_inputs["ref_wav_22k"][:RATE], RATE)
    settings = with_changes(
        Settings(),
        engine={**STREAM, "on_voice_error": "dry"},
        voice={
            "voice": "seedvc",
            "diffusion_steps": PARAMS["diffusion_steps"],
            "cfg_rate": PARAMS["cfg_rate"],
            "max_prompt_time": PARAMS["max_prompt_time"],
        },
    )
    proc = BlockProcessor(voice, settings, RATE)  # the voice's own rate: no resamplers
    n = proc.block_dev
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(200 * n) / RATE)).astype(np.float32)
    k = 0

    def block() -> np.ndarray:
        nonlocal k
        out = proc.process(x[k * n : (k + 1) * n])
        k += 1
        return out

    try:
        for _ in range(3):
            block()
        assert proc.voice_errors == 0, proc.last_error
        server.kill()
        errors = proc.voice_errors
        outs = []
        while proc.voice_errors < errors + 3:  # the link's failure is seen within blocks
            outs.append((k, block()))
            assert k < 50, "the dead server was never noticed"
        assert voice.lost >= 1
        assert any(kind == "remote" and "lost" in msg for kind, msg in events), events
        # a fallback block after the first (which crossfades into it) is the dry input,
        # delayed by the latency the voice would have had
        delay = proc.dry_delay_dev()
        idx, out = outs[-1]
        want = np.concatenate([np.zeros(delay, np.float32), x])[idx * n : (idx + 1) * n]
        np.testing.assert_array_equal(out, want)

        server.start()
        t0 = time.monotonic()
        while not any("reconnected" in msg for _, msg in events):
            block()
            time.sleep(0.1)
            assert time.monotonic() - t0 < RECONNECT_TIMEOUT, events
        assert voice.reconnects == 1
        block()  # the new stream's first block: the block before it was never computed
        errors = proc.voice_errors
        for _ in range(3):
            out = block()
        assert proc.voice_errors == errors, proc.last_error  # the voice is back
        idx = k - 1
        dry = np.concatenate([np.zeros(delay, np.float32), x])[idx * n : (idx + 1) * n]
        assert np.abs(out - dry).max() > 0.01  # and what plays is the voice, not the fallback
    finally:
        voice.close()
        if server.proc is None:
            server.start()  # the other tests' server
