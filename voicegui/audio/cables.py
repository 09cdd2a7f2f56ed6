"""The "Send to apps" switch on Windows and macOS: find a virtual cable among the devices, and
say which device to pick in the other program (voicegui installs no driver of its own there).

A virtual cable is a pair: a playback device that voicegui plays into, and a recording device
that Discord, OBS or a browser picks as its microphone. Plain data in, plain data out (no
PortAudio): the window runs it on the device list the audio host sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from voicegui.audio.device_info import DeviceInfo
from voicegui.audio.virtual_mic import DISPLAY_NAME, SINK_DESCRIPTION, SOURCE_NAME
from voicegui.settings import DeviceRef


@dataclass(frozen=True)
class Cable:
    product: str  # "VB-CABLE", "VoiceMeeter", "BlackHole", "Loopback"
    output: DeviceRef  # where voicegui plays the voice
    pick: str  # the device to choose as the microphone in the other program
    note: str = ""  # a step the product needs beyond picking the device

    @property
    def advice(self) -> str:
        text = (
            f'The voice plays into "{self.output.name}". In Discord, OBS or a browser, choose '
            f'"{self.pick}" as the microphone.'
        )
        return f"{text} {self.note}" if self.note else text


@dataclass(frozen=True)
class _Kind:
    product: str
    pattern: re.Pattern  # matches the playback device's name
    pick: str  # template of the recording device's name, from the match's groups
    note: str = ""


# In order of preference: a plain cable first; VoiceMeeter needs its mixer routed as well.
# Windows' MME host API cuts names to 31 characters, so only their beginnings are matched.
KINDS = (
    _Kind("VB-CABLE", re.compile(r"^(CABLE(?:-[A-D])?|Hi-Fi Cable) Input\b", re.I), "{0} Output"),
    _Kind("VB-CABLE", re.compile(r"^(VB-Cable)$", re.I), "{0}"),  # macOS: one device both ways
    _Kind("BlackHole", re.compile(r"^(BlackHole \d+ch)\b", re.I), "{0}"),
    _Kind("Loopback", re.compile(r"^(Loopback Audio(?: \d+)?)$", re.I), "{0}"),
    _Kind(
        "VoiceMeeter",
        re.compile(r"^VoiceMeeter (Aux |VAIO3 )?Input\b", re.I),
        "VoiceMeeter {0}Output",
        "In VoiceMeeter, send that input strip to its virtual bus (B1; Aux: B2; VAIO3: B3).",
    ),
)

# how voicegui's own virtual microphone (Linux) shows in device lists: its description, its node
# name (JACK through pipewire-jack), and the sink it is made from
OWN_MIC_NAMES = (DISPLAY_NAME, SOURCE_NAME, SINK_DESCRIPTION)

INSTALL = {
    "win32": (
        "No virtual cable is installed. Windows has no built-in way to make one program's sound "
        "another program's microphone: install VB-CABLE (free, vb-audio.com/Cable), then press "
        'Refresh. voicegui plays into its "CABLE Input" and Discord or OBS picks its '
        '"CABLE Output" as the microphone.'
    ),
    "darwin": (
        "No virtual audio device is installed. macOS has no built-in way to make one program's "
        "sound another program's microphone: install BlackHole 2ch (free, "
        "existential.audio/blackhole) or Rogue Amoeba's Loopback, then press Refresh. voicegui "
        "plays into it and Discord or OBS picks the same device as the microphone."
    ),
}


def find_cables(devices: Iterable[DeviceInfo], hostapi: str = "") -> list[Cable]:
    """The virtual cables among ``devices`` (outputs only), best first; those on ``hostapi``
    before the same cable on another host API."""
    found: list[tuple[int, int, Cable]] = []
    for d in devices:
        if d.max_output_channels <= 0:
            continue
        for rank, kind in enumerate(KINDS):
            m = kind.pattern.match(d.name.strip())
            if m is None:
                continue
            groups = [g or "" for g in m.groups()]
            pick = kind.pick.format(*groups)
            cable = Cable(kind.product, d.ref, pick, kind.note)
            found.append((rank, 0 if d.hostapi == hostapi else 1, cable))
            break
    found.sort(key=lambda item: (item[0], item[1]))
    seen, out = set(), []
    for _, _, cable in found:
        if (cable.output.hostapi, cable.output.name) not in seen:
            seen.add((cable.output.hostapi, cable.output.name))
            out.append(cable)
    return out


def cable_for(devices: Iterable[DeviceInfo], hostapi: str) -> Cable | None:
    """The cable to play into on ``hostapi`` (the device lists show one host API at a time)."""
    return next((c for c in find_cables(devices, hostapi) if c.output.hostapi == hostapi), None)


def missing_advice(platform: str, devices: Iterable[DeviceInfo] = (), hostapi: str = "") -> str:
    """What to do when ``hostapi`` has no cable: install one, or use another host API that has."""
    elsewhere = [c for c in find_cables(devices, hostapi) if c.output.hostapi != hostapi]
    if elsewhere:
        c = elsewhere[0]
        return (
            f"{c.product} is installed but not on {hostapi or 'this host API'}: choose the "
            f"{c.output.hostapi} host API to use it."
        )
    return INSTALL.get(platform, INSTALL["win32"] if platform.startswith("win") else "")


def _is_recording_end(name: str, pick: str) -> bool:
    """``name`` is the cable's recording device: its name, or that name followed by what the
    driver adds ("CABLE Output (VB-Audio Virtual Cable)"; MME's cut at 31 characters falls after
    every recording end's name)."""
    name, pick = name.strip().casefold(), pick.casefold()
    return name.startswith(pick) and (len(name) == len(pick) or not name[len(pick)].isalnum())


def input_warning(
    devices: Iterable[DeviceInfo], input_ref: DeviceRef, outputs: Iterable[DeviceRef]
) -> str:
    """Why the chosen input is not a microphone, or "" when it may be one.

    The recording end of a virtual cable only hears what is played into the cable; when that is
    voicegui's own output (or monitor), the voice would feed back into itself and howl.
    ``outputs``: the output and monitor the voice plays into.
    """
    name = input_ref.name
    if not name:
        return ""
    lowered = name.casefold()
    if any(own.casefold() in lowered for own in OWN_MIC_NAMES):
        return (
            f'"{name}" is voicegui\'s own virtual microphone: the voice would feed back into '
            "itself. Choose your microphone as the Input."
        )
    chosen = {ref.name for ref in outputs if ref.name}
    recording = [c for c in find_cables(devices) if _is_recording_end(name, c.pick)]
    if not recording:
        return ""
    loop = next((c for c in recording if c.output.name in chosen), None)
    if loop is not None:
        return (
            f'"{name}" records what plays into "{loop.output.name}", where the voice goes: it '
            "would feed back into itself. Choose your microphone as the Input."
        )
    cable = recording[0]
    return (
        f'"{name}" is the recording end of a virtual cable ({cable.product}), not a microphone: '
        f'it hears only what plays into "{cable.output.name}". Choose your microphone as the '
        "Input."
    )
