"""The built-in voice on espeak-ng speech: pitch accuracy and formant behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from tests.signals import envelope_scale, frame_f0
from voicegui.engine.offline import convert_array
from voicegui.settings import Settings, with_changes
from voicegui.voices.base import BlockInfo
from voicegui.voices.dsp import DSPVoice

SR = 48000


def shifted(x: np.ndarray, pitch: float, formant: float) -> np.ndarray:
    settings = with_changes(
        Settings(),
        engine={"block_time": 0.01, "gate_threshold_db": -90.0},
        voice={"pitch": pitch, "formant": formant},
    )
    y, proc = convert_array(x, SR, DSPVoice(), settings)
    delay = round(proc.latency().algorithmic * SR)
    return y[delay:]  # time-aligned with the input


@pytest.mark.parametrize("semitones", [-12, -5, 5, 12])
def test_pitch_shift_median_f0_ratio_within_15_cents(speech_48k, semitones):
    y = shifted(speech_48k, float(semitones), 0.0)
    f_in = frame_f0(speech_48k, SR)
    f_out = frame_f0(y, SR)
    n = min(len(f_in), len(f_out))
    voiced = (f_in[:n] > 0) & (f_out[:n] > 0)
    assert voiced.mean() > 0.3  # enough voiced frames to judge
    ratio = float(np.median(f_out[:n][voiced] / f_in[:n][voiced]))
    cents = 1200 * np.log2(ratio) - 100 * semitones
    assert abs(cents) <= 15, f"median F0 ratio off by {cents:.1f} cents"


@pytest.mark.parametrize("pitch", [-5.0, 0.0, 5.0])
def test_formant_zero_keeps_the_envelope(speech_48k, pitch):
    y = shifted(speech_48k, pitch, 0.0)
    scale = envelope_scale(speech_48k[: len(y)], y, SR)
    assert abs(scale - 1.0) <= 0.05, scale


@pytest.mark.parametrize("formant,pitch", [(-5.0, 0.0), (4.0, 0.0), (3.0, 5.0), (-3.0, -7.0)])
def test_formant_shift_scales_the_envelope(speech_48k, formant, pitch):
    y = shifted(speech_48k, pitch, formant)
    want = 2 ** (formant / 12)
    scale = envelope_scale(speech_48k[: len(y)], y, SR)
    assert abs(scale / want - 1.0) <= 0.05, (scale, want)


def test_pitch_zero_formant_zero_is_transparent(speech_48k):
    y = shifted(speech_48k, 0.0, 0.0)
    np.testing.assert_allclose(y, speech_48k[: len(y)], atol=1e-6)


def test_cents_resolution_changes_the_output(speech_48k):
    a = shifted(speech_48k[:SR], 3.00, 0.0)
    b = shifted(speech_48k[:SR], 3.05, 0.0)
    assert np.abs(a - b).max() > 1e-3


@pytest.mark.parametrize("seconds", [0.3, 0.5])
def test_long_blocks_are_the_same_stream_as_shorter_ones(seconds):
    """Blocks longer than the voice's history can take (the fallback beside a neural voice's
    0.3-0.5 s blocks, a large block size) give exactly what the same samples give fed as the
    shorter blocks the voice cuts them into; blocks up to that size are taken whole."""
    from voicegui.speech_signal import synthetic_speech

    sr = 48000
    x = synthetic_speech(2.0, sr).astype(np.float32)
    long_b = round(seconds * sr)
    n = len(x) // long_b * long_b
    chunk = DSPVoice().chunk
    assert long_b > chunk >= round(Settings().engine.block_time * sr)  # the default: whole

    def stream(pieces: list[int]) -> np.ndarray:
        v = DSPVoice()
        v.update({"pitch": 5.0})
        out, at = [], 0
        for size in pieces:
            out.append(v.convert(x[at : at + size], BlockInfo(0, size, 0, 0, 0)))
            at += size
        return np.concatenate(out)

    cut = [min(chunk, long_b - i) for i in range(0, long_b, chunk)]  # one long block, cut
    np.testing.assert_array_equal(stream([long_b] * (n // long_b)), stream(cut * (n // long_b)))
    # negative control: the history cannot take such a block in one piece
    with pytest.raises(ValueError):
        DSPVoice()._convert(x[:long_b].astype(np.float64))
