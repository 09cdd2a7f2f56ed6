"""The one place that imports sounddevice, so that ASIO is switched on before PortAudio loads.

On Windows the sounddevice wheel carries an ASIO build of PortAudio that is only used when
SD_ENABLE_ASIO is set before the import. VOICEGUI_NO_ASIO=1 turns that off.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from voicegui.engine.priority import ordinary_priority

_sd: ModuleType | None = None


def sounddevice() -> ModuleType:
    global _sd
    if _sd is None:
        if sys.platform == "win32" and os.environ.get("VOICEGUI_NO_ASIO", "") not in ("1", "true"):
            os.environ.setdefault("SD_ENABLE_ASIO", "1")
        try:
            # PortAudio starts here (a JACK client and its threads): at ordinary priority, so
            # those threads do not inherit the audio host's real-time command thread's policy
            with ordinary_priority():
                import sounddevice as sd
        except OSError as exc:  # PortAudio library missing
            raise AudioBackendError(
                f"PortAudio is not available ({exc}). On Debian/Ubuntu: apt install libportaudio2"
            ) from exc
        _sd = sd
    return _sd


def terminate() -> None:
    """Release PortAudio completely (before the audio server it talks to goes away)."""
    if _sd is not None:
        while _sd._initialized > 0:
            _sd._terminate()


def reinitialize() -> None:
    """Rescan devices (PortAudio only sees devices and servers present at init)."""
    sd = sounddevice()
    with ordinary_priority():  # see sounddevice()
        sd._terminate()
        sd._initialize()


class AudioBackendError(RuntimeError):
    pass


def close_stream(stream) -> None:
    """Abort and close a PortAudio stream; a stream whose device vanished may refuse both."""
    if stream is None:
        return
    try:
        if stream.active:
            stream.abort()
        stream.close()
    except Exception:
        pass


def rtmixer() -> ModuleType:
    """rtmixer: C callbacks over PortAudio rings, on sounddevice's own PortAudio (so ASIO and
    WASAPI settings apply). Imported after sounddevice so the ASIO switch is honoured."""
    sounddevice()
    import rtmixer as rt

    return rt
