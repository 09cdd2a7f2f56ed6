"""Push-to-talk and mute in the engine: the output gain ramps over a raised cosine, never jumps.

The bound on the output's sample-to-sample step is derived from the ramp: for y[j] = g[j] x[j],
  |y[j] - y[j-1]| <= g[j] |x[j] - x[j-1]| + |x[j-1]| |g[j] - g[j-1]| <= D + A * s
where D is the largest step of the input (for a sine of amplitude A and frequency f at rate r,
D = 2 A sin(pi f / r)) and s = sin(pi / (2 n)) the largest step of an n-sample raised cosine.
A hard switch of the gain breaks that bound by the input's amplitude at the switch.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from voicegui.engine.processor import BlockProcessor
from voicegui.engine.talk import (
    RAMP_TIME,
    OutputGate,
    TalkControl,
    max_gain_step,
    ramp_steps,
)
from voicegui.settings import Settings, with_changes
from voicegui.voices.passthrough import PassthroughVoice

F32_EPS = float(np.finfo(np.float32).eps)


def run(gate: OutputGate, x: np.ndarray, block: int, toggles: dict[int, tuple]) -> np.ndarray:
    """``x`` through ``gate`` block by block; ``toggles[i]`` = (push_to_talk, held, muted) set
    before block i, as the command thread would between blocks."""
    y = x.astype(np.float32).copy()
    for i, start in enumerate(range(0, len(y), block)):
        if i in toggles:
            gate.control.set(*toggles[i])
        gate.apply(y[start : start + block])
    return y


def sine(rate: int, f: float, seconds: float, amplitude: float, peak_at: int) -> np.ndarray:
    """A cosine, so that sample ``peak_at`` sits on a peak (where a hard switch jumps most)."""
    j = np.arange(round(seconds * rate))
    return (amplitude * np.cos(2 * np.pi * f * (j - peak_at) / rate)).astype(np.float32)


def step_bound(amplitude: float, f: float, rate: int, steps: int) -> float:
    d = 2 * amplitude * math.sin(math.pi * f / rate)
    # float32: x, g and each product are rounded (relative 2^-24 each, a few per difference)
    return d + amplitude * max_gain_step(steps) + 8 * F32_EPS * amplitude


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_ramp_length_comes_from_the_rate(rate):
    steps = ramp_steps(rate)
    assert steps == round(RAMP_TIME * rate)
    gate = OutputGate(TalkControl(), rate)
    assert gate.steps == steps
    # constant input 1: the output is the ramp itself, reaching exactly 1 after `steps` samples
    gate.control.set(True, False, False)  # push-to-talk, not held: closed
    y = run(OutputGate(gate.control, rate), np.ones(3 * steps), 97, {1: (True, True, False)})
    opened = y[97:]
    assert np.all(y[:97] == 0.0)  # closed from the start: silent, no fade-in of the start
    assert np.all(np.diff(opened[:steps]) > 0)  # rises monotonically...
    assert opened[steps - 1] == 1.0 and opened[steps - 2] < 1.0  # ...for exactly `steps` samples
    assert np.all(opened[steps:] == 1.0)


@pytest.mark.parametrize(("rate", "block"), [(48000, 256), (48000, 64), (44100, 441), (16000, 7)])
def test_opening_closing_and_reversing_mid_ramp_never_jump(rate, block):
    steps = ramp_steps(rate)
    f, amplitude = 440.0, 0.8
    k_open = 3  # switch on the block boundary that sits on a peak of the input
    x = sine(rate, f, 0.5, amplitude, peak_at=k_open * block)
    mid = k_open + max(1, steps // (2 * block))  # somewhere inside the ramp (or just after)
    toggles = {
        0: (True, False, False),  # push-to-talk on, key up: silent
        k_open: (True, True, False),  # key down: opens
        mid: (True, False, False),  # released while still opening: closes from where it is
        mid + 2: (False, False, True),  # push-to-talk off but muted: stays closed
        mid + 3: (False, False, False),  # unmuted: open
    }
    control = TalkControl()
    control.set(*toggles[0])
    gate = OutputGate(control, rate)  # starts closed, as a stream started in push-to-talk does
    y = run(gate, x, block, toggles)
    bound = step_bound(amplitude, f, rate, steps)
    worst = float(np.max(np.abs(np.diff(y.astype(np.float64)))))
    assert worst <= bound, (worst, bound)
    # and the gate did open and close (not a gate that never moves)
    assert np.all(y[: k_open * block] == 0.0)
    period = math.ceil(rate / f)
    # a whole period at full level: its largest sample is at least A cos(pi f / r)
    peak = amplitude * math.cos(math.pi * f / rate) * (1 - 4 * F32_EPS)
    assert np.max(np.abs(y[-period:])) >= peak
    tail = y[-(len(y) - (mid + 3) * block - steps) :]
    np.testing.assert_array_equal(tail, x[-len(tail) :])  # fully open: untouched, bit for bit


def test_a_hard_switch_breaks_the_bound():
    """Negative control: the same schedule through a one-sample 'ramp' (a plain on/off switch)
    jumps by the input's amplitude at the switch, far above the raised cosine's bound."""
    rate, block, f, amplitude = 48000, 256, 440.0, 0.8
    k_open = 3
    x = sine(rate, f, 0.2, amplitude, peak_at=k_open * block)
    toggles = {0: (True, False, False), k_open: (True, True, False)}
    hard = OutputGate(TalkControl(), rate, ramp_time=1.0 / rate)
    assert hard.steps == 1
    y = run(hard, x, block, toggles)
    worst = float(np.max(np.abs(np.diff(y.astype(np.float64)))))
    bound = step_bound(amplitude, f, rate, ramp_steps(rate))
    assert worst > 5 * bound
    assert worst == pytest.approx(amplitude, rel=1e-6)  # the click: 0 -> the peak in one sample


def test_the_gate_at_rest_costs_nothing_and_allocates_no_block():
    """Open at rest it touches no sample; ramping or closed it works in place: tracing the
    allocations over many blocks never sees a block-sized buffer (a ``gain * out`` temporary
    would be one, as the control below shows)."""
    rate, block = 48000, 480
    control = TalkControl()
    gate = OutputGate(control, rate)
    out = np.ones(block, np.float32)
    tracemalloc.start()
    try:
        for i in range(400):
            control.set(True, i % 50 < 25, False)  # open and close every 25 blocks
            out[:] = 1.0
            gate.apply(out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _ = out * np.float32(0.5)  # control: a temporary of the block's size
        _, control_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert control_peak >= out.nbytes
    assert peak < out.nbytes, peak


def test_the_processor_is_bit_identical_with_the_gate_open_and_silent_when_closed():
    rate = 48000
    s = with_changes(Settings(), engine={"block_time": 0.01, "gate_threshold_db": -90.0})
    x = sine(rate, 330.0, 0.3, 0.5, peak_at=0)
    plain = BlockProcessor(PassthroughVoice(), s, rate)
    gated = BlockProcessor(PassthroughVoice(), s, rate)
    control = TalkControl()
    gated.output_gate = OutputGate(control, rate)
    b = plain.block_dev
    for i in range(0, len(x) - b + 1, b):
        np.testing.assert_array_equal(gated.process(x[i : i + b]), plain.process(x[i : i + b]))
    control.set(True, False, False)  # push-to-talk on, key up
    # the ramp down lasts `steps` samples; every block after it is exact silence
    blocks = -(-ramp_steps(rate) // b) + 3
    outs = [gated.process(x[:b]) for _ in range(blocks)]
    assert np.max(np.abs(outs[0])) > 0  # the first block still fades
    for out in outs[-3:]:
        assert np.all(out == 0.0)
    assert gated.metrics.snapshot.output_db == -120.0  # the level the window shows
