"""`bench --loopback`: clicks and a tone through an engine whose output returns outside the app.

On JACK the return path is wired with jack_connect, outside the engine, which is what a loopback
cable or a virtual microphone does (the Windows app's smoke test runs the same probe under Wine on
WASAPI through a PipeWire virtual microphone).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicegui.engine.loopback import harmonic_tone, probe_open_loop, slowest_blocks, tone_f0
from voicegui.engine.metrics import Metrics
from voicegui.engine.realtime import RealtimeEngine
from voicegui.settings import DeviceRef, Settings, with_changes

SR = 48000
# tones across the bench's range (60-1000 Hz), spaced evenly in pitch
TONES = [float(f) for f in np.geomspace(65.0, 1000.0, 24)]
# Without its parabolic refinement the estimate is off by at most half a sample of the period;
# 1200*log2(P/(P-0.5)) cents for the shortest period tested (P = SR / highest tone). The
# refinement must do far better than that on a clean tone, so a quarter of it is the bound.
SHORTEST_PERIOD = SR / max(TONES)
INTEGER_LAG_CENTS = 1200 * math.log2(SHORTEST_PERIOD / (SHORTEST_PERIOD - 0.5))
F0_TOLERANCE_CENTS = INTEGER_LAG_CENTS / 4


@pytest.mark.parametrize("hz", TONES)
def test_tone_f0_finds_a_harmonic_tone(hz):
    found = tone_f0(harmonic_tone(hz, SR // 2, SR), SR)
    assert abs(1200 * math.log2(found / hz)) < F0_TOLERANCE_CENTS


def test_tone_f0_says_so_for_silence_and_noise():
    assert tone_f0(np.zeros(SR // 2, np.float32), SR) == 0.0
    noise = np.random.default_rng(3).standard_normal(SR // 2).astype(np.float32)
    assert tone_f0(noise, SR) == 0.0


def test_slowest_blocks_says_which_blocks_and_when():
    metrics = Metrics()
    rng = np.random.default_rng(5)
    block_s, blocks = 0.01, 300
    computes = rng.uniform(0.1, 0.5, blocks)
    slow = {0: 7.5, 123: 3.0}  # a slow first block, and a stall later on
    for i, ms in slow.items():
        computes[i] = ms
    for i, ms in enumerate(computes):
        metrics.record(100.0 + i * block_s, float(ms), ms / 10.0, -20.0, -20.0, 30.0, 0)
    found = slowest_blocks(metrics.history(), n=3)
    assert [b["compute_ms"] for b in found[:2]] == [7.5, 3.0]
    assert [b["t_s"] for b in found[:2]] == [0.0, round(123 * block_s, 3)]
    assert found[2]["compute_ms"] == round(float(np.sort(computes)[-3]), 3)
    assert slowest_blocks(Metrics().history()) == []


@pytest.mark.jack
@pytest.mark.slow
def test_open_loop_probe_times_clicks_and_finds_the_shifted_tone(jack_server):
    from voicegui.audio import jack

    ref = DeviceRef(jack_server["hostapi"], "system")
    pitch = 5.0
    settings = with_changes(
        Settings(),
        audio={"input": ref, "output": ref},
        engine={"block_time": 0.01, "gate_threshold_db": -90.0},
        voice={"voice": "dsp", "pitch": pitch, "formant": 0.0},
    )
    before = set(jack.ports())
    engine = RealtimeEngine(settings)
    engine.start()
    try:
        ins, outs = jack.client_ports()
        jack.loop_back([p for p in ins if p not in before], [p for p in outs if p not in before])
        result = probe_open_loop(engine, seconds=4.0, clicks=4, tone_hz=220.0)
    finally:
        engine.stop()
    assert result["clicks_returned"] == result["clicks_sent"] == 4
    # the round trip is the computed one, to within one JACK period (as bench --jack)
    period_ms = jack_server["period"] / jack_server["rate"] * 1e3
    assert abs(result["difference_ms"]) <= period_ms, result
    tone = result["tone"]
    # the built-in voice's pitch accuracy, as tests/core/test_dsp_voice.py asserts it (15 cents)
    assert abs(tone["cents_off"]) < 15.0, tone
    # negative control: the same check against the unshifted tone fails (500 cents off)
    assert abs(1200 * math.log2(tone["found_hz"] / tone["sent_hz"])) > 15.0
    returned = result["returned"]
    assert returned.dtype == np.float32 and len(returned) >= 5 * SR


def test_cli_loopback_needs_both_devices(capsys):
    from voicegui.cli import main

    assert main(["bench", "--loopback", "--input", "Windows WASAPI:Mic"]) == 2
    assert "--loopback needs --input and --output" in capsys.readouterr().err
