"""The built-in voice as the fallback (``on_voice_error = 'builtin'``): while the voice fails (or
a Remote GPU's block is late) the listener hears the built-in voice at the user's pitch, in
place, crossfaded; never the speaker's own voice."""

from __future__ import annotations

import numpy as np
import pytest

from voicegui.engine.fallback import BuiltinFallback
from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import SOURCE_FADE, BlockProcessor
from voicegui.settings import Settings, with_changes
from voicegui.voices.base import BlockInfo
from voicegui.voices.passthrough import PassthroughVoice

SR = 48000
PITCH = 5.0
TONE = 220.0


class FailsBetween(PassthroughVoice):
    """Passes its input through, but raises on calls first..last-1 (a server gone a while)."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.calls = first, last, 0

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        self.calls += 1
        if self.first <= self.calls - 1 < self.last:
            raise RuntimeError("block came back late")
        return super().convert(window, info)


def _run(on_error: str, first: int = 20, last: int = 60, block_time: float = 0.02):
    settings = with_changes(
        Settings(),
        engine={"block_time": block_time, "on_voice_error": on_error, "gate_threshold_db": -90.0},
        voice={"pitch": PITCH},
    )
    proc = BlockProcessor(FailsBetween(first, last), settings, SR)
    t = np.arange(int((last + 20) * block_time * SR)) / SR
    x = (0.3 * np.sin(2 * np.pi * TONE * t)).astype(np.float32)
    return x, run_blocks(proc, x), proc


def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-20)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(y)


@pytest.mark.parametrize(
    "block_time,first,last",
    [(0.02, 20, 60), (0.25, 4, 12)],  # the built-in voice's own blocks; a neural voice's
)
def test_the_builtin_voice_plays_in_place_of_a_failing_voice(block_time, first, last):
    x, y, proc = _run("builtin", first, last, block_time)
    b = proc.block_dev
    assert proc.voice_errors == last - first
    # the processor's fallback is exactly the built-in voice on the input delayed where the
    # voice's output lands (same code, same samples: compared exactly)
    ref = BuiltinFallback(SR, b, proc.dry_delay_dev())
    ref.update({"pitch": PITCH, "formant": 0.0})
    blocks = [ref.process(x[k * b : (k + 1) * b]) for k in range(last)]
    fade = round(SOURCE_FADE * SR)
    for k in range(first, last):  # call k plays at y[(k + 1) b ...] (run_blocks' live timing)
        got = y[(k + 1) * b : (k + 2) * b]
        start = fade if k == first else 0  # the crossfade from the voice
        np.testing.assert_array_equal(got[start:], blocks[k][start:])
    # and it is the built-in voice at the user's pitch: +5 semitones, not the dry 220 Hz
    mid = y[(first + 1) * b + SR // 8 : (last - 1) * b]
    # half an FFT bin of this window, plus the built-in voice's 15-cent pitch accuracy
    tol = 0.5 * SR / len(mid) + TONE * 2 ** (PITCH / 12) * (2 ** (15 / 1200) - 1)
    assert abs(_peak_hz(mid) - TONE * 2 ** (PITCH / 12)) < tol
    # back to the voice (a passthrough here) after the failure, crossfaded
    after = y[(last + 2) * b + SR // 8 : (last + 2) * b + SR // 4]
    assert abs(_peak_hz(after) - TONE) < tol


def test_negative_control_the_dry_fallback_is_the_speakers_own_pitch():
    first, last = 20, 60
    _, y, proc = _run("dry", first, last)
    b = proc.block_dev
    mid = y[(first + 6) * b : (last - 2) * b]
    tol = 0.5 * SR / len(mid) + TONE * 2 ** (PITCH / 12) * (2 ** (15 / 1200) - 1)
    assert abs(_peak_hz(mid) - TONE * 2 ** (PITCH / 12)) > tol  # what the test above tells apart
    assert abs(_peak_hz(mid) - TONE) < tol


def test_switched_on_and_off_live_and_never_for_the_builtin_voice_itself():
    from voicegui.voices.dsp import DSPVoice

    settings = with_changes(Settings(), engine={"block_time": 0.02})
    proc = BlockProcessor(PassthroughVoice(), settings, SR)
    assert proc.fallback is None
    block = np.zeros(proc.block_dev, np.float32)
    proc.request(with_changes(settings, engine={"on_voice_error": "builtin"}))
    proc.process(block)
    assert proc.fallback is not None
    proc.request(with_changes(settings, engine={"on_voice_error": "silence"}))
    proc.process(block)
    assert proc.fallback is None
    own = with_changes(settings, engine={"on_voice_error": "builtin"})
    assert BlockProcessor(DSPVoice(), own, SR).fallback is None


def _lag(y: np.ndarray, x: np.ndarray, seg: slice, most: int) -> int:
    """Where ``y`` over ``seg`` matches ``x`` best: y[n] ~ x[n - lag]."""
    scores = [np.dot(y[seg], x[seg.start - lag : seg.stop - lag]) for lag in range(most)]
    return int(np.argmax(scores))


def test_the_builtin_voice_lands_where_the_voice_and_the_dry_path_land():
    """At pitch 0 the built-in voice is the input, delayed: by exactly the dry path's delay
    (which is the voice's own), so switching between them moves nothing in time."""
    from voicegui.speech_signal import synthetic_speech

    settings = with_changes(
        Settings(),
        engine={
            "block_time": 0.02,
            "extra_left_time": 0.3,
            "on_voice_error": "builtin",
            "gate_threshold_db": -90.0,
        },
    )
    proc = BlockProcessor(FailsBetween(10, 70), settings, SR)
    x = synthetic_speech(1.6, SR).astype(np.float32)
    y = run_blocks(proc, x)
    b, delay = proc.block_dev, proc.dry_delay_dev()
    seg = slice(20 * b, 65 * b)  # failing blocks: the built-in voice plays
    most = 3 * b + delay
    assert _lag(y, x, seg, most) == b + delay  # run_blocks plays call k one block later
    # negative control: the built-in voice without the alignment lands its own lookahead late
    plain = BuiltinFallback(SR, b, 0)
    z = np.concatenate([plain.process(x[k * b : (k + 1) * b]) for k in range(len(x) // b)])
    assert _lag(z, x, seg, most) == plain.voice.delay != delay
