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
    "rvc": VoiceInfo(
        "rvc",
        "RVC (voice models)",
        "A trained RVC voice model (.pth or .onnx, optional .index) from your voice library. "
        "Needs the RVC shared weights (content encoder and pitch model).",
        False,
        True,
    ),
}
RVC_VOICE_MODULE = "voicegui.voices.rvc.voice"
REMOTE_VOICES = ("seedvc", "rvc")  # what a `voicegui serve` server can compute


def heavy(name: str) -> bool:
    """Building the voice takes seconds (weights to load, a reference to embed): it is built in
    a worker, with progress, rather than created."""
    info = VOICES.get(name)
    return info is not None and (info.neural or info.needs_reference)


def voice_available(name: str, settings=None) -> tuple[bool, str]:
    """Whether a voice can be chosen now, and why not (weights missing, ...). With ``settings``
    (VoiceSettings) the voice's own choices are checked too (the RVC model)."""
    if name not in VOICES:
        return False, f"unknown voice '{name}'"
    if name in REMOTE_VOICES and getattr(settings, "device", "") == "remote":
        # computed on a server: nothing of the voice is needed here (an RVC voice file the
        # app holds is sent to the server; a name it does not know may be the server's)
        if not settings.remote_address.strip():
            return False, "no Remote GPU server address is set"
        if name == "rvc" and not settings.model:
            return False, "no RVC voice model chosen: pick one in the voice library"
        return True, ""
    if name == "rvc":
        return _rvc_available(settings)
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
        ""
        if ok
        else "Seed-VC weights are not installed: run `voicegui models download seedvc`, or "
        "compute it on a Remote GPU (a `voicegui serve` server; Compute device)",
    )


def voice_selectable(name: str) -> tuple[bool, str]:
    """Whether the voice can be picked in the window. An RVC voice can be picked while its
    weights or its model are still missing: its voice library, shown once it is picked, gets
    them. Seed-VC can be picked without its weights where the Remote GPU client is installed:
    a `voicegui serve` server computes it then (the compute device, shown once it is picked)."""
    if name == "rvc":
        why = _rvc_runtime_missing()
        if why and _remote_client_present():
            return True, ""  # computed on a server
        return not why, why
    ok, why = voice_available(name)
    if not ok and name == "seedvc" and _remote_client_present():
        return True, ""
    return ok, why


def _remote_client_present() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tritonclient.grpc") is not None
    except ImportError:
        return False


def _rvc_runtime_missing() -> str:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "RVC needs PyTorch, which this installation (the lite bundle) lacks"
    try:
        found = importlib.util.find_spec(RVC_VOICE_MODULE) is not None
    except ImportError:
        found = False
    return "" if found else "the RVC voice engine is not part of this installation"


def _rvc_available(settings) -> tuple[bool, str]:
    why = _rvc_runtime_missing()
    if why:
        return False, why
    from voicegui.voices.rvc import shared_weights

    lacking = shared_weights.missing()
    if lacking:
        return False, (
            "the RVC shared weights are not installed (lacking "
            + " and ".join(lacking)
            + "): run `voicegui models download rvc`, or use Download in the voice library"
        )
    if settings is None:
        return True, ""
    from voicegui.voices.rvc.library import LibraryError, resolve

    try:
        resolve(settings.model, settings.index)
    except LibraryError as exc:
        return False, str(exc)
    return True, ""


def voice_identity(v) -> tuple[str, ...]:
    """What a voice object is built for (``v``: VoiceSettings): changing any of these needs a new
    voice. Backend, device and precision only matter to neural voices; an RVC voice is also
    built for its model, index and pitch estimator."""
    info = VOICES.get(v.voice)
    if info is None or not info.neural:
        return (v.voice, "", "", "")
    if v.voice == "rvc" and v.device == "remote":
        return (v.voice, v.device, v.remote_address, v.remote_ca, v.model, v.index, v.f0_method)
    if v.voice == "rvc":
        return (v.voice, v.backend, v.device, v.precision, v.model, v.index, v.f0_method)
    if v.device == "remote":
        return (v.voice, v.device, v.remote_address, v.remote_ca)
    return (v.voice, v.backend, v.device, v.precision)
