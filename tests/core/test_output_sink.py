"""The output ring keeps latency bounded when the two clocks drift or the producer stalls."""

from __future__ import annotations

import numpy as np
import pytest

from voicegui.audio.io import OutputSink

BLOCK, PERIOD = 480, 256


def run(sink: OutputSink, seconds: float, producer_ratio: float, stall_at: float | None = None):
    """Virtual clock at 48 kHz: the device pulls PERIOD every period; the producer pushes a
    block whenever its own (drifting) clock has produced one. Returns fill levels over time."""
    rate = 48000
    out = np.zeros(PERIOD, np.float32)
    produced = 0.0
    fills = []
    t = 0
    block = np.full(BLOCK, 0.1, np.float32)
    while t < seconds * rate:
        t += PERIOD
        sink.pull(out)
        produced += PERIOD * producer_ratio
        stalled = stall_at is not None and stall_at * rate <= t < (stall_at + 0.1) * rate
        while produced >= BLOCK and not stalled:
            produced -= BLOCK
            sink.push(block)
        fills.append(sink.ring.available())
    return np.array(fills)


HEADROOM = 192  # what the engine adds when input and output are separate devices


def make_sink() -> OutputSink:
    sink = OutputSink(48000)
    target = BLOCK + PERIOD + HEADROOM
    sink.prime(target, floor=target - BLOCK - PERIOD + 32, tolerance=PERIOD // 2, window=50)
    return sink


@pytest.mark.parametrize("ratio", [1.002, 0.998])
def test_drifting_clocks_keep_the_fill_bounded(ratio):
    """0.2 % clock mismatch (20 times worse than real devices) over 60 s of virtual time."""
    sink = make_sink()
    fills = run(sink, 60.0, ratio)
    late = fills[len(fills) // 2 :]
    steady_max = BLOCK + PERIOD + HEADROOM  # the fill right after a push, no drift
    assert late.max() <= steady_max + PERIOD  # bounded: at most a period of extra latency
    assert sink.corrections > 10  # it had to correct, and counted it
    assert sink.underrun_events == 0  # corrected before the device ran dry


def test_without_correction_the_fill_would_creep():
    sink = make_sink()
    sink.tolerance = 1 << 40  # disable trimming
    fills = run(sink, 60.0, 1.002)
    assert fills[-1] > 10 * BLOCK  # what the controller prevents: ~300 ms of extra latency


def test_a_stall_is_absorbed_and_latency_returns():
    sink = make_sink()
    fills = run(sink, 10.0, 1.0, stall_at=2.0)
    assert sink.underrun_events > 0  # the stall was audible as a gap, and counted
    before = fills[int(1.5 * 48000 / PERIOD) : int(2.0 * 48000 / PERIOD)]
    after = fills[-int(1.0 * 48000 / PERIOD) :]
    assert after.max() <= before.max() + PERIOD // 2
