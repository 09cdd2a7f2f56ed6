"""Which voices exist and how to build one. Heavy voices are imported only when chosen."""

from __future__ import annotations

from voicegui.settings import VoiceSettings
from voicegui.voices.base import Voice, VoiceError
from voicegui.voices.catalog import REMOTE_VOICES, VOICES, VoiceInfo, voice_available

__all__ = ["VOICES", "VoiceInfo", "create_voice", "voice_available"]


def create_voice(settings: VoiceSettings, progress=None) -> Voice:
    """Build the chosen voice; ``progress(stage, i, n)`` hears about slow first-time work
    (the ONNX export)."""
    name = settings.voice
    if name == "dsp":
        from voicegui.voices.dsp import DSPVoice

        return DSPVoice()
    if name == "passthrough":
        from voicegui.voices.passthrough import PassthroughVoice

        return PassthroughVoice()
    if name in REMOTE_VOICES and settings.device == "remote":
        return _remote_voice(settings, progress)
    if name == "seedvc":
        try:
            from voicegui.voices.seedvc.voice import create_seedvc_voice
        except ImportError as exc:
            raise VoiceError(f"the Seed-VC voice is not available: {exc}") from exc
        return create_seedvc_voice(settings, progress=progress)
    if name == "rvc":
        ok, why = voice_available(name, settings)
        if not ok:
            raise VoiceError(f"the RVC voice cannot be built: {why}")
        from voicegui.voices.rvc.voice import build_rvc_voice

        return build_rvc_voice(settings, progress=progress)
    raise VoiceError(f"unknown voice '{name}'; available: {', '.join(VOICES)}")


def _remote_voice(settings: VoiceSettings, progress=None) -> Voice:
    """The voice computed by a `voicegui serve` server at ``settings.remote_address``."""
    try:
        from voicegui.remote.auth import saved_token
        from voicegui.remote.voices import remote_voice
    except ImportError as exc:
        raise VoiceError(f"the Remote GPU voice needs tritonclient[grpc]: {exc}") from exc
    try:
        from voicegui.voices.vad import SileroSpeechDetector

        detector = SileroSpeechDetector()
    except Exception:  # an optimisation; the level gate works without it
        detector = None
    token = saved_token(settings.remote_address)
    return remote_voice(settings, token, progress=progress, speech_detector=detector)
