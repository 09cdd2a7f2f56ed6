"""Which voices exist and whether one can be chosen now: plain data, nothing heavy imported."""

from __future__ import annotations

from dataclasses import dataclass


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


def voice_identity(v) -> tuple[str, str, str, str]:
    """What a voice object is built for (``v``: VoiceSettings): changing any of these needs a new
    voice. Backend, device and precision only matter to neural voices."""
    info = VOICES.get(v.voice)
    if info is None or not info.neural:
        return (v.voice, "", "", "")
    return (v.voice, v.backend, v.device, v.precision)
