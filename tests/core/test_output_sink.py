"""The output ring keeps latency bounded when the two clocks drift or the producer stalls."""

from __future__ import annotations

import numpy as np
import pytest

from voicegui.audio.io import OutputSink, fill_floor

BLOCK, PERIOD = 480, 256


class VirtualMixer:
    """rtmixer's play action on a virtual clock: each callback plays what the ring holds, and
    a ring found with less than a callback's worth drops the action (the engine re-arms it)."""

    def __init__(self) -> None:
        self.actions: set[object] = set()
        self.ring = None
        self.action: object | None = None
        self._out = np.zeros(PERIOD, np.float32)

    def play_ringbuffer(self, ring, channels):
        self.ring, self.action = ring, object()
        self.actions.add(self.action)
        return self.action

    def callback(self) -> None:
        if self.action in self.actions and self.ring.readinto(self._out) < PERIOD:
            self.actions.discard(self.action)


def run(sink: OutputSink, mixer: VirtualMixer, seconds: float, producer_ratio: float,
        stall_at: float | None = None) -> np.ndarray:  # fmt: skip
    """Virtual clock at 48 kHz: the device plays PERIOD every period; the producer (its input
    on a drifting clock) pushes a block whenever it has one. Returns fill levels over time."""
    rate = 48000
    produced = 0.0
    fills = []
    t = 0
    block = np.full(BLOCK, 0.1, np.float32)
    while t < seconds * rate:
        t += PERIOD
        mixer.callback()
        produced += PERIOD * producer_ratio
        stalled = stall_at is not None and stall_at * rate <= t < (stall_at + 0.1) * rate
        while produced >= BLOCK and not stalled:
            produced -= BLOCK
            sink.push(block, late=int(produced))  # input that arrived after this block
        fills.append(sink.fill())
    return np.array(fills)


HEADROOM = 192  # what the engine adds when input and output are separate devices


def make_sink(shared_clock: bool = False) -> tuple[OutputSink, VirtualMixer]:
    sink, mixer = OutputSink(48000), VirtualMixer()
    sink.attach(mixer)
    target = BLOCK + PERIOD + HEADROOM
    floor = fill_floor(target, BLOCK, PERIOD, shared_clock)
    sink.prime(target, floor, PERIOD // 2, window=50, count_late=shared_clock)
    return sink, mixer


@pytest.mark.parametrize("ratio", [1.002, 0.998])
def test_drifting_clocks_keep_the_fill_bounded(ratio):
    """0.2 % clock mismatch (20 times worse than real devices) over 60 s of virtual time."""
    sink, mixer = make_sink()
    fills = run(sink, mixer, 60.0, ratio)
    late = fills[len(fills) // 2 :]
    steady_max = BLOCK + PERIOD + HEADROOM  # the fill right after a push, no drift
    assert late.max() <= steady_max + PERIOD  # bounded: at most a period of extra latency
    assert sink.corrections > 10  # it had to correct, and counted it
    assert sink.underrun_events == 0  # corrected before the device ran dry


def test_one_clock_needs_no_correction():
    """Duplex (one callback records and plays): the measure is exact, nothing is corrected."""
    sink, mixer = make_sink(shared_clock=True)
    run(sink, mixer, 30.0, 1.0)
    assert sink.corrections == 0 and sink.underrun_events == 0


def test_without_correction_the_fill_would_creep():
    sink, mixer = make_sink()
    sink.tolerance = 1 << 40  # disable trimming
    fills = run(sink, mixer, 60.0, 1.002)
    assert fills[-1] > 10 * BLOCK  # what the controller prevents: ~300 ms of extra latency


def test_a_stall_is_absorbed_and_latency_returns():
    sink, mixer = make_sink()
    fills = run(sink, mixer, 10.0, 1.0, stall_at=2.0)
    assert sink.underrun_events > 0  # the stall was audible as a gap, and counted
    assert mixer.action in mixer.actions  # and playback was re-armed
    before = fills[int(1.5 * 48000 / PERIOD) : int(2.0 * 48000 / PERIOD)]
    after = fills[-int(1.0 * 48000 / PERIOD) :]
    assert after.max() <= before.max() + PERIOD // 2
