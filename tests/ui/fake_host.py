"""An audio host whose Seed-VC is a stand-in: slow to prepare, with warnings, and whose ONNX
backend cannot load. Runs in the audio host process (``AudioHost(service=...)``)."""

from __future__ import annotations

import time

from voicegui.engine.host import HostService
from voicegui.voices.base import VoiceError
from voicegui.voices.passthrough import PassthroughVoice

SERVICE = "tests.ui.fake_host:FakeNeuralHost"


class FakeNeuralVoice(PassthroughVoice):
    name = "seedvc"
    provider = "CPU (onnxruntime, fp32)"
    warnings = ["CUDA was requested but onnxruntime could not load it; running on CPU"]

    def prepare(self, reference, sr):
        if reference is None:
            raise VoiceError("Seed-VC needs a reference clip of the target voice")
        time.sleep(0.3)


class FakeNeuralHost(HostService):
    def make_voice(self, settings, progress=None):
        if settings.voice != "seedvc":
            return super().make_voice(settings, progress)
        if settings.backend == "onnx":
            raise ImportError("No module named 'onnxruntime'")
        voice = FakeNeuralVoice()
        if settings.precision != "auto":  # says which precision it was built for
            voice.provider = f"CPU (torch, {settings.precision})"
        return voice
