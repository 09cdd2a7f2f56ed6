"""Silero VAD as the engine's gate hook: speech passes, loud non-speech does not."""

from __future__ import annotations

import numpy as np

from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings, with_changes
from voicegui.voices.passthrough import PassthroughVoice
from voicegui.voices.vad import SileroSpeechDetector

SR = 48000


class CountingVoice(PassthroughVoice):
    def __init__(self, detector) -> None:
        self.speech_detector = detector
        self.calls = 0

    def convert(self, window, info):
        self.calls += 1
        return super().convert(window, info)


def test_vad_gate_runs_the_voice_on_speech_only(speech_48k):
    rng = np.random.default_rng(3)
    hum = (
        0.2 * np.sin(2 * np.pi * 50 * np.arange(2 * SR) / SR) + 0.05 * rng.standard_normal(2 * SR)
    ).astype(np.float32)  # loud, but not speech
    x = np.concatenate([hum, speech_48k[: 2 * SR]])
    voice = CountingVoice(SileroSpeechDetector())
    settings = with_changes(
        Settings(), engine={"block_time": 0.02, "gate_threshold_db": -60.0, "gate_hold_time": 0.2}
    )
    proc = BlockProcessor(voice, settings, SR)
    run_blocks(proc, x)
    blocks = len(x) // proc.block_dev
    hum_blocks = len(hum) // proc.block_dev
    # the 2 s of hum cost (almost) nothing; the speech runs the voice most of the time
    assert voice.calls < blocks - hum_blocks + 10
    assert voice.calls > 0.5 * (blocks - hum_blocks)
