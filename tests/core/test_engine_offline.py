"""The engine on a virtual clock: lengths, latency, clicks, gate, live settings, failing voices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, chirp, sosfilt

from voicegui.engine.offline import convert_array, run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings, with_changes
from voicegui.voices.base import BlockInfo
from voicegui.voices.dsp import DSPVoice
from voicegui.voices.passthrough import PassthroughVoice

SR = 48000
GATE_OFF = {"gate_threshold_db": -90.0}


class PassthroughAt(PassthroughVoice):
    """Passthrough that insists on its own sample rate: exercises both resamplers."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def configure(self, device_rate: int) -> int:
        return self.rate


class FailsEveryNth(PassthroughVoice):
    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        self.calls += 1
        if self.calls % self.n == 0:
            raise RuntimeError("model exploded")
        return super().convert(window, info)


def noise(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def xcorr_delay(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    n = len(x) - max_lag
    scores = [float(np.dot(x[:n], y[lag : lag + n])) for lag in range(max_lag)]
    return int(np.argmax(scores))


@pytest.mark.parametrize(
    "voice,engine",
    [
        (PassthroughVoice, {"block_time": 0.01}),
        (PassthroughVoice, {"block_time": 0.02, "crossfade_time": 0.02, "extra_right_time": 0.01}),
        (lambda: PassthroughAt(22050), {"block_time": 0.04}),
        (lambda: PassthroughAt(16000), {"block_time": 0.02, "crossfade_time": 0.005}),
        (DSPVoice, {"block_time": 0.01}),
        # Seed-VC's upstream geometry: 22.05 kHz voice behind a 48 kHz device
        (
            lambda: PassthroughAt(22050),
            {
                "block_time": 0.18,
                "crossfade_time": 0.04,
                "extra_left_time": 2.5,
                "extra_right_time": 0.02,
            },
        ),
    ],
)
def test_output_length_and_latency_match_cross_correlation(voice, engine):
    x = noise(1.5)
    settings = with_changes(Settings(), engine={**engine, **GATE_OFF})
    y, proc = convert_array(x, SR, voice(), settings)
    assert len(y) == len(x)
    reported = proc.latency().algorithmic
    measured = xcorr_delay(x, y, int(0.4 * SR)) / SR
    assert abs(measured - reported) <= 0.001, (measured, reported)


def test_dsp_latency_meets_target_at_10ms_blocks():
    settings = with_changes(Settings(), engine={"block_time": 0.01})
    proc = BlockProcessor(DSPVoice(), settings, SR)
    assert proc.latency().algorithmic <= 0.025


def highpass_peak(y: np.ndarray, skip: int) -> float:
    sos = butter(8, 8000, "highpass", fs=SR, output="sos")
    return float(np.abs(sosfilt(sos, y)[skip:]).max())


@pytest.mark.parametrize(
    "voice,params",
    [
        (PassthroughVoice, {}),
        (DSPVoice, {}),
        (DSPVoice, {"pitch": 5.0}),
        (DSPVoice, {"pitch": -5.0, "formant": 3.0}),
    ],
)
def test_no_click_at_block_boundaries_on_a_sine_sweep(voice, params):
    """Criterion: a sweep from 100 Hz to 1.5 kHz (amplitude 0.5) has no energy above 8 kHz, even
    pitch-shifted up 5 semitones (2 kHz). A discontinuity at a block boundary is broadband, so the
    output above 8 kHz must stay below 0.01 (-34 dB re the sweep). The negative control shows a
    single 0.05 step breaks the criterion."""
    t = np.arange(3 * SR) / SR
    x = (0.5 * chirp(t, 100, 3, 1500, method="logarithmic")).astype(np.float32)
    settings = with_changes(Settings(), engine={"block_time": 0.01, **GATE_OFF}, voice=params)
    y, proc = convert_array(x, SR, voice(), settings)
    skip = round(proc.latency().algorithmic * SR) + SR // 10
    assert highpass_peak(y, skip) < 0.01
    clicked = y.copy()
    clicked[SR + 7 :] += 0.05
    assert highpass_peak(clicked, skip) >= 0.01


def test_silence_gate_skips_the_voice_and_holds():
    calls = []

    class Counting(PassthroughVoice):
        def convert(self, window, info):
            calls.append(info.index)
            return super().convert(window, info)

    x = np.zeros(SR, np.float32)
    x[SR // 4 : SR // 2] = noise(0.25)  # 250 ms of sound inside 1 s of silence
    settings = with_changes(
        Settings(), engine={"block_time": 0.01, "gate_threshold_db": -40.0, "gate_hold_time": 0.1}
    )
    y, proc = convert_array(x, SR, Counting(), settings)
    # 25 loud blocks + 10 blocks of hold; the 65 silent blocks cost nothing
    assert len(calls) == 35
    assert proc.metrics.snapshot.gated
    assert np.abs(y[-SR // 5 :]).max() == 0.0


def test_live_settings_change_takes_effect_on_the_next_block():
    settings = with_changes(Settings(), engine={"block_time": 0.01, **GATE_OFF})
    proc = BlockProcessor(PassthroughVoice(), settings, SR)
    block = np.full(proc.block_dev, 0.1, np.float32)
    for _ in range(10):
        out = proc.process(block)
    assert abs(out.mean() - 0.1) < 1e-6
    proc.request(with_changes(settings, engine={"output_gain_db": -20.0}))
    out = proc.process(block)
    assert abs(out.mean() - 0.01) < 1e-6
    # bypass crossfades to the dry signal, which is delay-aligned with the wet one
    proc.request(with_changes(settings, engine={"bypass": True}))
    out = proc.process(block)
    assert proc.settings.engine.bypass and abs(out[-1] - 0.1) < 1e-6


@pytest.mark.parametrize("on_error,expect", [("dry", 0.1), ("silence", 0.0)])
def test_voice_raising_every_10th_block_keeps_audio_going(on_error, expect):
    voice = FailsEveryNth(10)
    settings = with_changes(
        Settings(), engine={"block_time": 0.01, "on_voice_error": on_error, **GATE_OFF}
    )
    proc = BlockProcessor(voice, settings, SR)
    x = np.full(proc.block_dev * 100, 0.1, np.float32)
    y = run_blocks(proc, x)
    assert voice.calls == 100
    assert proc.voice_errors == 10
    assert proc.metrics.snapshot.voice_errors == 10
    assert "model exploded" in proc.metrics.snapshot.last_error
    assert np.all(np.isfinite(y)) and len(y) == len(x)
    # the block after the 10th call: crossfaded to dry or silence, not garbage
    b = proc.block_dev
    failed = y[10 * b : 11 * b]  # input block 9 (the 10th call) plays one block later
    assert abs(failed[-1] - expect) < 1e-3


def test_voice_returning_nan_is_caught():
    class NaNVoice(PassthroughVoice):
        def convert(self, window, info):
            return np.full(info.block + info.sola_extra, np.nan, np.float32)

    settings = with_changes(Settings(), engine={"block_time": 0.01, **GATE_OFF})
    y, proc = convert_array(noise(0.2), SR, NaNVoice(), settings)
    assert np.all(np.isfinite(y))
    assert proc.voice_errors == 20 and "NaN" in proc.last_error
