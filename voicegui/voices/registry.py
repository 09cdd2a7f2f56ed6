"""Which voices exist and how to build one. Heavy voices are imported only when chosen."""

from __future__ import annotations

from dataclasses import dataclass

from voicegui.settings import VoiceSettings
from voicegui.voices.base import Voice, VoiceError


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    label: str
    description: str
    needs_reference: bool
    neural: bool


VOICES = {
    "dsp": VoiceInfo(
        "dsp",
        "Built-in (pitch & formant)",
        "Pitch and formant shifting on the CPU, no download, ~12 ms lookahead.",
        False,
        False,
    ),
    "passthrough": VoiceInfo(
        "passthrough", "Passthrough", "Your own voice, unchanged.", False, False
    ),
    "seedvc": VoiceInfo(
        "seedvc",
        "Seed-VC (zero-shot)",
        "Any voice from a reference clip. Needs the Seed-VC weights.",
        True,
        True,
    ),
}


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
    if name == "seedvc":
        try:
            from voicegui.voices.seedvc.voice import create_seedvc_voice
        except ImportError as exc:
            raise VoiceError(f"the Seed-VC voice is not available: {exc}") from exc
        return create_seedvc_voice(settings, progress=progress)
    raise VoiceError(f"unknown voice '{name}'; available: {', '.join(VOICES)}")


def voice_available(name: str) -> tuple[bool, str]:
    """Whether a voice can be chosen now, and why not (weights missing, ...)."""
    if name not in VOICES:
        return False, f"unknown voice '{name}'"
    if name != "seedvc":
        return True, ""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False, "Seed-VC needs PyTorch, which this installation (the lite bundle) lacks"
    try:
        from voicegui.modelhub import seedvc_installed
    except ImportError as exc:
        return False, f"Seed-VC support is not available: {exc}"
    ok = seedvc_installed()
    return (
        ok,
        "" if ok else "Seed-VC weights are not installed: run `voicegui models download seedvc`",
    )
