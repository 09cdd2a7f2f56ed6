"""The cheap CPU pitch estimator (YIN): behaviour on tones, silence, noise and real speech.

It has no upstream counterpart to match number for number; it is held to what a pitch input
of a voice changer needs: the right note (within a few cents on clean tones), no pitch in
silence or noise, and on speech the same contour as FCPE's real weights where both hear a
pitch (within a quarter tone: octave or fifth errors, 700-1200 cents, are what a bad
estimator makes). Unvoiced frames are filled by interpolation afterwards (f0 post-processing),
so voicing fewer frames than FCPE is harmless; voicing frames FCPE calls unvoiced is not.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.rvc.front_kit import bundled_fcpe
from voicegui.voices.rvc.yin import HOP, SAMPLE_RATE, Yin

QUARTER_TONE = 50  # cents


def tone(f0: float, seconds: float = 1.0, harmonics: int = 8) -> np.ndarray:
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(0.3 / h * np.sin(2 * np.pi * f0 * h * time) for h in range(1, harmonics + 1))


def cents(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return np.abs(1200 * np.log2(np.asarray(a, dtype=np.float64) / b))


@pytest.mark.parametrize("f0", [55, 80, 150, 300, 600, 1000])
def test_tones(f0):
    out = Yin().f0(tone(f0))[5:-5]  # the edge frames see the zero padding
    assert (out > 0).all()
    # a lag of ~16000/f0 samples refined by a parabola: within 5 cents up to 600 Hz, where the
    # lag is >= 27 samples; 1000 Hz (16 samples) within 10
    assert cents(out, f0).max() < (5 if f0 <= 600 else 10)


def test_silence_and_noise_are_unvoiced():
    yin = Yin()
    assert not yin.f0(np.zeros(8000)).any()
    noise = 0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)
    assert (yin.f0(noise) > 0).mean() < 0.05


@pytest.mark.parametrize("n", [1, 159, 160, 4960, 32001])
def test_frame_grid(n):
    out = Yin().f0(np.zeros(n))
    assert out.shape == (n // HOP + 1,) and out.dtype == np.float32


def test_speech_follows_fcpe(rvc_inputs):
    wav = rvc_inputs["src_wav_16k"]
    ours, fcpe = Yin().f0(wav), bundled_fcpe().f0(wav)
    both = (ours > 0) & (fcpe > 0)
    assert not ((ours > 0) & (fcpe == 0)).any()  # no pitch where FCPE hears none
    assert both.sum() >= 0.6 * (fcpe > 0).sum()
    assert (cents(ours[both], fcpe[both]) < QUARTER_TONE).mean() >= 0.9


def test_range_is_checked():
    with pytest.raises(ValueError):
        Yin(f0_min=500, f0_max=400)
