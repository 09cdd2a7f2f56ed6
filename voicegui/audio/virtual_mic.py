"""The "Send to apps" switch on Linux: a virtual microphone that Discord, OBS, a browser or a
game can pick as its input.

The device is a null sink (where the voice is played) and a source remapped from that sink's
monitor (what other programs record), made by loading two modules into the sound server over the
Pulse protocol. That works the same on PipeWire (pipewire-pulse) and on PulseAudio.

How, and why this way:

- **pulsectl** (ctypes over libpulse) loads and unloads the modules. libpulse is on every Linux
  desktop that runs PipeWire or PulseAudio; the answers are structured (no parsing of ``pactl``'s
  translated text, and no need for the ``pactl`` program, which PipeWire desktops often lack).
- **Modules, not a child process.** ``pw-loopback`` would vanish with the app, but it is
  PipeWire-only and a process per device. Modules loaded over the Pulse protocol outlive a killed
  app instead, so ownership is kept in a lock file (``flock``) that the owning process holds
  while the device is its own: the kernel releases it when that process dies however it dies. A
  device found with our names and no live owner was left behind by a crash; it is *reused* (kept
  as it is, so a call that still records from it stays on it instead of being moved to the real
  microphone) or removed when the switch is off. A device whose owner still runs belongs to
  another voicegui and is left alone.
- **The voice reaches the sink** through PortAudio's ALSA device ``pipewire`` with
  ``PIPEWIRE_NODE`` naming the sink (pipewire-alsa), or ``pulse`` with ``PULSE_SINK``
  (libasound2-plugins, plain PulseAudio). Both plugins read the variable when the stream opens, so
  it is set only around that one open (``playback_env``): the microphone and the monitor opened
  before and after it are not redirected.

Nothing here imports PortAudio or Qt: the window may use the names and the ``Route`` logic.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DISPLAY_NAME = "voicegui (virtual microphone)"  # what the user picks in Discord/OBS
SINK_NAME = "voicegui_virtual_mic_sink"
SOURCE_NAME = "voicegui_virtual_mic"
SINK_DESCRIPTION = "voicegui (into the virtual microphone)"
CONNECT_TIMEOUT = 2.0  # s to reach the sound server
CONNECT_SLICE = 0.05
LOCK_NAME = "voicegui-virtual-mic.lock"

MISSING_SERVER = (
    "Send to apps needs PipeWire (with pipewire-pulse) or PulseAudio, and neither is running for "
    "this user."
)


class VirtualMicError(RuntimeError):
    """The virtual microphone cannot be made or reached; the message says what is missing."""


def supported() -> bool:
    """voicegui makes its own virtual microphone only on Linux (elsewhere: a virtual cable)."""
    return sys.platform.startswith("linux")


def _pulse(name: str = "voicegui") -> Any:
    try:
        import pulsectl
    except ImportError as exc:
        raise VirtualMicError(
            "Send to apps needs the pulsectl package (pip install pulsectl)"
        ) from exc
    except OSError as exc:  # libpulse itself is missing
        raise VirtualMicError(
            "Send to apps needs libpulse (Debian/Ubuntu: apt install libpulse0)"
        ) from exc
    pulse = pulsectl.Pulse(name, connect=False)
    # pulsectl's connect(timeout=T) always waits all of T, even once connected: try in short
    # slices instead. No server at all fails at once (before the slice is over).
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        t0 = time.monotonic()
        try:
            pulse.connect(autospawn=False, timeout=CONNECT_SLICE)
            return pulse
        except pulsectl.PulseError as exc:
            now = time.monotonic()
            if now - t0 < CONNECT_SLICE or now > deadline:
                pulse.close()
                raise VirtualMicError(MISSING_SERVER) from exc


def _sink_args() -> str:
    # the nested quoting is what both PulseAudio and pipewire-pulse parse into a description
    # with spaces (pipewire-pulse cuts an unquoted value at the first space)
    return f"sink_name={SINK_NAME} sink_properties='device.description=\"{SINK_DESCRIPTION}\"'"


def _source_args() -> str:
    return (
        f"master={SINK_NAME}.monitor source_name={SOURCE_NAME} "
        f"source_properties='device.description=\"{DISPLAY_NAME}\"'"
    )


def _lock_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")  # the user's own, as the sound server's socket
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / LOCK_NAME
    return Path(tempfile.gettempdir()) / f"{LOCK_NAME}.{os.getuid()}"


@dataclass
class Found:
    """Our devices as the server lists them now (module indices; None where absent)."""

    sink_module: int | None = None
    source_module: int | None = None

    @property
    def complete(self) -> bool:
        return self.sink_module is not None and self.source_module is not None

    @property
    def any(self) -> bool:
        return self.sink_module is not None or self.source_module is not None


class VirtualMic:
    """The virtual microphone of this process: ``on()`` makes (or reuses) it, ``off()`` removes
    it. One per process; the lock file says which process owns the device."""

    def __init__(self) -> None:
        self._lock: Any = None  # the open lock file while this process owns the device
        self.server = ""  # the sound server's name, once reached

    @property
    def owned(self) -> bool:
        return self._lock is not None

    # ---- ownership ---------------------------------------------------------------------------
    def _take_lock(self) -> str:
        """'' when this process owns the device now, else who does (another live voicegui)."""
        if self._lock is not None:
            return ""
        import fcntl

        f = open(_lock_path(), "a+")  # noqa: SIM115 (held open for as long as we own the device)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            other = f.read().strip() or "?"
            f.close()
            return f"Another voicegui (process {other}) is using the virtual microphone."
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f
        return ""

    def _drop_lock(self) -> None:
        f, self._lock = self._lock, None
        if f is not None:
            f.close()  # closing releases the flock

    # ---- the server --------------------------------------------------------------------------
    @staticmethod
    def _find(pulse: Any) -> Found:
        found = Found()
        for sink in pulse.sink_list():
            if sink.name == SINK_NAME:
                found.sink_module = sink.owner_module
        for source in pulse.source_list():
            if source.name == SOURCE_NAME:
                found.source_module = source.owner_module
        return found

    @staticmethod
    def _unload(pulse: Any, found: Found) -> None:
        # the source reads from the sink's monitor: remove it first
        for module in (found.source_module, found.sink_module):
            if module is not None:
                with contextlib.suppress(Exception):
                    pulse.module_unload(module)

    def exists(self) -> bool:
        """Whether the server has the device now (False when no server runs)."""
        try:
            pulse = _pulse("voicegui-query")
        except VirtualMicError:
            return False
        try:
            return self._find(pulse).complete
        finally:
            pulse.close()

    def on(self) -> str:
        """Make the device, or take one over. Returns 'created', 'reused' (left behind by a
        process that ended without removing it) or 'on' (ours already). Raises VirtualMicError
        saying what is missing, or who else uses it."""
        pulse = _pulse()
        try:
            self.server = pulse.server_info().server_name
            found = self._find(pulse)
            was_ours = self.owned
            busy = self._take_lock()
            if busy:
                raise VirtualMicError(busy)
            if found.complete:
                return "on" if was_ours else "reused"
            if found.any:  # half of one (a crash between the two loads): start over
                self._unload(pulse, found)
            try:
                sink = pulse.module_load("module-null-sink", _sink_args())
                try:
                    pulse.module_load("module-remap-source", _source_args())
                except Exception:
                    with contextlib.suppress(Exception):
                        pulse.module_unload(sink)
                    raise
            except Exception as exc:
                self._drop_lock()
                raise VirtualMicError(
                    f"The sound server ({self.server}) refused to make the virtual microphone: "
                    f"{exc}"
                ) from exc
            return "created"
        finally:
            pulse.close()

    def off(self) -> str:
        """Remove our device, or one left behind by a crash; one that another running voicegui
        owns stays. Returns 'removed', 'none', 'in use' or 'no server' (never raises)."""
        try:
            pulse = _pulse()
        except VirtualMicError:
            self._drop_lock()
            return "no server"
        try:
            found = self._find(pulse)
            if not found.any:
                self._drop_lock()
                return "none"
            if self._take_lock():
                return "in use"
            self._unload(pulse, found)
            self._drop_lock()
            return "removed"
        finally:
            pulse.close()


# ---- how PortAudio reaches it ----------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """The PortAudio (ALSA) device that reaches the sound server, and the variables that aim a
    stream opened on it at the virtual microphone's sink (playback) or source (recording)."""

    device: str  # PortAudio device name on the ALSA host API
    play_env: tuple[tuple[str, str], ...]
    record_env: tuple[tuple[str, str], ...]


ROUTE_DEVICES = (
    # pipewire-alsa: the plugin aims a stream at the node PIPEWIRE_NODE names
    Route("pipewire", (("PIPEWIRE_NODE", SINK_NAME),), (("PIPEWIRE_NODE", SOURCE_NAME),)),
    # libasound2-plugins' pulse plugin: libpulse's default sink/source for the new stream
    Route("pulse", (("PULSE_SINK", SINK_NAME),), (("PULSE_SOURCE", SOURCE_NAME),)),
)
ALSA_HOSTAPI = "ALSA"
MISSING_ROUTE = (
    "PortAudio has no ALSA 'pipewire' or 'pulse' device to play into the virtual microphone: "
    "install pipewire-alsa (PipeWire) or libasound2-plugins (PulseAudio)."
)


def route_for(devices: Sequence[Any]) -> tuple[Any, Route]:
    """The output device (a DeviceInfo of ``devices``) and Route to play into the virtual
    microphone; raises VirtualMicError when PortAudio has no device that reaches the server."""
    for route in ROUTE_DEVICES:
        for d in devices:
            if d.hostapi == ALSA_HOSTAPI and d.name == route.device and d.max_output_channels:
                return d, route
    raise VirtualMicError(MISSING_ROUTE)


@contextlib.contextmanager
def environment(variables: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Set ``variables`` for what opens inside (a PortAudio stream), then restore them."""
    saved = {k: os.environ.get(k) for k, _ in variables}
    os.environ.update(dict(variables))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
