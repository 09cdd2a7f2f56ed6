"""Ring buffer, framing, SOLA, resampling and settings as units."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voicegui.audio.ringbuffer import RingBuffer
from voicegui.engine.framing import Framer
from voicegui.engine.resample import StreamResampler, block_quantum
from voicegui.engine.sola import Sola, best_offset
from voicegui.settings import Settings, SettingsError, needs_restart, with_changes


def test_ring_buffer_wraps_and_counts_overflow():
    ring = RingBuffer(10)
    assert ring.write(np.arange(7, dtype=np.float32)) == 7
    out = np.zeros(5, np.float32)
    assert ring.read_into(out) == 5
    np.testing.assert_array_equal(out, [0, 1, 2, 3, 4])
    assert ring.write(np.arange(7, 15, dtype=np.float32)) == 8  # wraps around the end
    out = np.zeros(12, np.float32)
    assert ring.read_into(out) == 10
    np.testing.assert_array_equal(out[:10], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    assert ring.write(np.zeros(12, np.float32)) == 10
    assert ring.overflows == 2
    assert ring.skip(4) == 4 and ring.available() == 6


def test_framer_keeps_left_context_and_block_order():
    f = Framer(block=4, left=3, right=2)
    for i in range(3):
        w = f.push(np.full(4, i + 1, np.float32))
    # the newest 9 samples of 1111 2222 3333, oldest first
    np.testing.assert_array_equal(w, [1, 2, 2, 2, 2, 3, 3, 3, 3])
    bigger = f.resized(left=5, right=2)
    assert len(bigger.window) == 11
    np.testing.assert_array_equal(bigger.window[-9:], w)


def test_sola_finds_the_true_offset_and_splices_without_jump():
    rng = np.random.default_rng(0)
    signal = np.cumsum(rng.standard_normal(4000)).astype(np.float32)
    signal /= np.abs(signal).max()
    tail = signal[1000:1100]
    head = signal[1000 - 37 : 1000 - 37 + 100 + 80]
    assert best_offset(head, tail, 80) == 37

    sola = Sola(block=400, crossfade=100, search=80)
    out1 = sola.splice(signal[0:580])  # first block: nominal offset, fades in from silence
    assert sola.last_offset == 40
    # the next output is shifted by an unknown amount; SOLA must line it up again
    shift = 23
    start = 40 + 400 - shift
    out2 = sola.splice(signal[start : start + 580])
    assert sola.last_offset == shift
    joined = np.concatenate([out1, out2])
    np.testing.assert_allclose(joined[100:], signal[40 + 100 : 40 + 800], atol=1e-6)


def test_block_quantum_gives_whole_blocks_at_both_rates():
    q = block_quantum(48000, 22050)
    assert q == 320 and (q * 22050) % 48000 == 0
    assert block_quantum(48000, 48000) == 1


@pytest.mark.parametrize("rates", [(48000, 22050), (22050, 48000), (44100, 16000), (48000, 48000)])
def test_stream_resampler_fixed_size_and_known_delay(rates):
    a, b = rates
    q = block_quantum(a, b)
    chunk = q * max(1, 960 // q)
    rs = StreamResampler(a, b, chunk)
    n = chunk * 40
    x = np.zeros(n, np.float32)
    x[chunk * 5 + 11] = 1.0
    out = np.concatenate([rs.process(x[i : i + chunk]).copy() for i in range(0, n, chunk)])
    assert len(out) == n * b // a
    peak = int(np.argmax(np.abs(out)))
    expected = (chunk * 5 + 11) * b / a + rs.delay
    assert abs(peak - expected) <= 1.0
    # a sine survives with its level
    t = np.arange(n) / a
    s = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rs.reset()
    y = np.concatenate([rs.process(s[i : i + chunk]).copy() for i in range(0, n, chunk)])
    assert abs(np.sqrt(np.mean(y[len(y) // 2 :] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_settings_round_trip_validation_and_restart_rules():
    s = with_changes(
        Settings(), engine={"block_time": 0.05}, voice={"pitch": 3.5}, audio={"sample_rate": 44100}
    )
    again = Settings.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    with pytest.raises(SettingsError, match="Pitch must be between -24 and 24"):
        with_changes(s, voice={"pitch": 30.0})
    with pytest.raises(SettingsError):
        Settings.from_dict({"engine": {"block_time": float("nan")}})
    with pytest.raises(SettingsError, match="newer"):
        Settings.from_dict({"schema_version": 99})
    # unknown keys are ignored, missing keys take defaults
    assert Settings.from_dict({"engine": {"whatever": 1}}).engine == Settings().engine
    # an on/off setting: off by default, round-trips, only ever a bool
    assert Settings().voice.style_from_prompt is False
    on = with_changes(s, voice={"style_from_prompt": True})
    assert Settings.from_dict(json.loads(json.dumps(on.to_dict()))).voice.style_from_prompt
    with pytest.raises(SettingsError, match="style_from_prompt must be true or false"):
        with_changes(s, voice={"style_from_prompt": "yes"})
    assert not needs_restart(s, on)
    assert needs_restart(s, with_changes(s, engine={"block_time": 0.1}))
    assert needs_restart(s, with_changes(s, audio={"sample_rate": 48000}))
    assert not needs_restart(
        s, with_changes(s, voice={"pitch": 1.0}, engine={"crossfade_time": 0.02})
    )
