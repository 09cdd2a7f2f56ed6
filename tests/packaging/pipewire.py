"""The headless PipeWire of ``tests/pipewire.py`` with a virtual microphone, for the Windows app
under Wine.

The virtual microphone is what a desktop has too: a null sink ("VoiceGUI_Output") and a source
remapped from its monitor ("VoiceGUI_Microphone"), so what is played into the output can be
recorded from the microphone. Wine's PulseAudio driver shows both on WASAPI, MME and
DirectSound.

Debian/Ubuntu packages: dbus pipewire pipewire-pulse wireplumber pipewire-bin pulseaudio-utils.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pipewire import SERVER_PROGRAMS, PipeWire, missing_programs

OUTPUT = "VoiceGUI_Output"
MICROPHONE = "VoiceGUI_Microphone"


def missing_tools() -> list[str]:
    return missing_programs(SERVER_PROGRAMS)


@contextmanager
def virtual_microphone() -> Iterator[PipeWire]:
    """A headless PipeWire whose default sink and source are the virtual output and microphone.

    Its ``env`` names the Pulse socket too: Wine starts from this process's environment, and a
    PULSE_SERVER there must not lead it to another server.
    """
    pw = PipeWire.start()
    try:
        socket = Path(pw.env["XDG_RUNTIME_DIR"]) / "pulse" / "native"
        pw.env["PULSE_SERVER"] = f"unix:{socket}"
        pw.pactl(
            "load-module", "module-null-sink", "sink_name=voicegui_out",
            f"sink_properties=device.description={OUTPUT}",
        )  # fmt: skip
        pw.pactl(
            "load-module", "module-remap-source", "master=voicegui_out.monitor",
            "source_name=voicegui_mic", f"source_properties=device.description={MICROPHONE}",
        )  # fmt: skip
        pw.wait_for(lambda: "voicegui_mic" in pw.names("sources"), "the virtual microphone")
        pw.pactl("set-default-sink", "voicegui_out")
        pw.pactl("set-default-source", "voicegui_mic")
        yield pw
    finally:
        pw.stop()
