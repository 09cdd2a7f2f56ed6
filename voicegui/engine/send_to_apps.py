"""The audio host's side of "Send to apps" on Linux: the virtual microphone the engine plays
into (audio/virtual_mic.py), its measured latency (audio/route_latency.py), and the state the
window and `voicegui live` show.

The device lives as long as the switch is on, not as long as the engine runs: a program that
records from it keeps it selected while the voice changer is stopped (it hears silence).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from voicegui.settings import AudioSettings

log = logging.getLogger("voicegui.host")


class SendToApps:
    def __init__(self) -> None:
        self.vmic: Any = None  # audio/virtual_mic.VirtualMic, once the switch was used
        self.state: dict = {"on": False}  # on, what, server, error, measured, message

    @property
    def owned(self) -> bool:
        return self.vmic is not None and self.vmic.owned

    def switch(self, on: bool, audio: AudioSettings | None = None, playing: bool = False) -> dict:
        """Make (or take over) the virtual microphone, or remove it (one left behind by a crash
        too). A new one's latency is measured with ``audio``'s rate and device latency before
        any voice plays into it. ``playing``: the engine plays into it now (it then stays)."""
        from voicegui.audio import virtual_mic

        if not virtual_mic.supported():
            self.state = {"on": False, "error": "", "message": ""}
            return self.state
        if self.vmic is None:
            self.vmic = virtual_mic.VirtualMic()
        if not on:
            if playing:
                raise RuntimeError("the voice changer is playing into the virtual microphone")
            what = self.vmic.off()
            log.info("virtual microphone off: %s", what)
            self.state = {"on": False, "error": "", "message": "",
                          "removed_leftover": what == "removed"}  # fmt: skip
            return self.state
        try:
            what = self.vmic.on()
            log.info("virtual microphone on: %s (%s)", what, self.vmic.server)
            if what != "on" or "measured" not in self.state:
                self.state = {"on": True, "what": what, "server": self.vmic.server, "error": "",
                              "measured": self._measure(audio)}  # fmt: skip
        except virtual_mic.VirtualMicError as exc:
            self.state = {"on": False, "error": str(exc), "message": str(exc)}
            raise
        self.state["message"] = status_line(self.state)
        return self.state

    def measure(self, audio: AudioSettings | None = None, playing: bool = False) -> dict:
        """Measure the way to the virtual microphone again (pulses, ~0.6 s); not while the
        voice plays into it (the pulses would mix with the voice)."""
        if playing:
            raise RuntimeError("stop the voice changer to measure the virtual microphone")
        if not self.state.get("on"):
            raise RuntimeError("the virtual microphone is off")
        self.state["measured"] = self._measure(audio)
        self.state["message"] = status_line(self.state)
        return self.state

    @staticmethod
    def _measure(audio: AudioSettings | None) -> dict:
        # ~0.6 s of Python callbacks: only when the device is made or taken over (or asked
        # for), before any voice plays into it
        from voicegui.audio.devices import list_devices
        from voicegui.audio.route_latency import measure_route
        from voicegui.audio.virtual_mic import route_for

        audio = audio or AudioSettings()
        device, route = route_for(list_devices("output"))  # raises saying what is missing
        try:
            result = measure_route(route, device, audio.sample_rate, audio.latency)
        except Exception as exc:  # a device that refuses the rate, ...: the route still works
            log.warning("measuring the virtual microphone failed: %s", exc)
            return {"measured_ms": None, "error": str(exc)}
        log.info("virtual microphone route: %s", result)
        return result

    def before_streams(self, audio: AudioSettings, check: bool = True) -> float:
        """Before streams open with ``audio``: the virtual microphone they play into exists
        (``check``: ask the server again even if it was made here); returns its latency part
        (s). The first use in this process also removes one that a crashed run left behind
        while the switch is off."""
        if audio.virtual_mic:
            if check or not self.owned:
                self.switch(True, audio)
            return route_part(self.state.get("measured") or {})
        if self.vmic is None:
            with contextlib.suppress(Exception):
                self.switch(False)
        return 0.0

    def after_streams(self, audio: AudioSettings) -> None:
        """After the streams restarted with ``audio``: switched off, the device goes."""
        if not audio.virtual_mic and self.owned:
            self.switch(False)

    def quit(self) -> None:
        if self.owned:
            log.info("virtual microphone at exit: %s", self.vmic.off())


def route_part(measured: dict) -> float:
    """What the virtual microphone adds after the output device (s): the measured trip less the
    buffer PortAudio reports for the output stream (device out), never below 0."""
    total = measured.get("measured_ms")
    if total is None:
        return 0.0
    return max(0.0, total - measured.get("player_reported_ms", 0.0)) / 1e3


def status_line(state: dict) -> str:
    """The line the window and `voicegui live` show while the virtual microphone is on."""
    from voicegui.audio.virtual_mic import DISPLAY_NAME

    text = f'In Discord, OBS or a browser, choose "{DISPLAY_NAME}" as the microphone.'
    measured = state.get("measured") or {}
    if measured.get("measured_ms") is not None:
        text += f" It adds {route_part(measured) * 1e3:.1f} ms."
    if state.get("what") == "reused":
        text += " (Kept the one a previous run left behind.)"
    return text
