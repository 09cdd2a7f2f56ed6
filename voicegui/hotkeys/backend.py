"""What every hotkey listener offers, and which one this desktop gets.

- X11: pynput's listener over the RECORD extension (sees keys whatever window has the focus).
- Windows: pynput's low-level keyboard hook.
- macOS: pynput's event tap; works once the app has the Accessibility permission.
- Wayland: the desktop's GlobalShortcuts portal over D-Bus when the compositor offers it; the
  compositor owns the keys there and may let the user pick others.

Backends are probed without importing a toolkit or opening a listener; ``start`` does that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from voicegui.hotkeys.bindings import Bindings, KeyCombo

Emit = Callable[[str, bool], None]  # (action id, pressed) from the listener's thread


class HotkeyBackendError(RuntimeError):
    """The listener could not start; the message says why in the user's words."""


@dataclass(frozen=True)
class BackendStatus:
    kind: str  # "X11", "Windows", "macOS", "Wayland", "none"
    usable: bool  # hotkeys can work here (now, or once started)
    text: str  # one line for the window: "Global hotkeys: X11", "Wayland: not offered ..."
    needs_permission: bool = False  # macOS: the Accessibility permission is missing
    detail: str = ""  # a longer explanation (why, what to do)


class Backend(Protocol):
    kind: str

    def status(self) -> BackendStatus: ...

    def check(self, combo: KeyCombo) -> str:
        """Why this listener cannot see ``combo`` here ('' when it can)."""
        ...

    def start(self, bindings: Bindings, emit: Emit) -> None: ...

    def stop(self) -> None: ...

    @property
    def listening(self) -> bool: ...


def is_wayland(env: Mapping[str, str]) -> bool:
    return bool(env.get("WAYLAND_DISPLAY")) or env.get("XDG_SESSION_TYPE") == "wayland"


NO_DESKTOP = BackendStatus(
    "none",
    False,
    "Global hotkeys: off (no desktop session found)",
    detail="Neither DISPLAY (X11) nor WAYLAND_DISPLAY (Wayland) is set.",
)


class NoBackend:
    """Where nothing can listen: says why, refuses to start."""

    kind = "none"
    listening = False

    def __init__(self, status: BackendStatus) -> None:
        self._status = status

    def status(self) -> BackendStatus:
        return self._status

    def check(self, combo: KeyCombo) -> str:
        return ""

    def start(self, bindings: Bindings, emit: Emit) -> None:
        raise HotkeyBackendError(self._status.text)

    def stop(self) -> None:
        pass


def choose_backend(platform: str = sys.platform, env: Mapping[str, str] | None = None) -> Backend:
    """The listener for this desktop (probed, not started)."""
    env = os.environ if env is None else env
    if platform.startswith("win"):
        from voicegui.hotkeys.pynput_backend import PynputBackend

        return PynputBackend("Windows")
    if platform == "darwin":
        from voicegui.hotkeys.pynput_backend import PynputBackend

        return PynputBackend("macOS")
    if is_wayland(env):
        from voicegui.hotkeys.portal import PortalBackend, portal_version

        version, why = portal_version()
        if version:
            return PortalBackend(version)
        if env.get("DISPLAY"):
            from voicegui.hotkeys.pynput_backend import PynputBackend

            # X11 programs (XWayland) still send their keys to an X listener: better than none
            return PynputBackend("X11", wayland_note=why)
        return NoBackend(
            BackendStatus(
                "Wayland",
                False,
                "Wayland: global hotkeys are not offered by this desktop",
                detail=why,
            )
        )
    if env.get("DISPLAY"):
        from voicegui.hotkeys.pynput_backend import PynputBackend

        return PynputBackend("X11")
    return NoBackend(NO_DESKTOP)
