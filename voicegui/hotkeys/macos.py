"""macOS: the permission a global key listener needs, checked and asked for.

macOS lets a program see keys typed in other programs only once the user has allowed it in
System Settings -> Privacy & Security -> Accessibility (and, since 10.15, Input Monitoring). The
check and the system's own prompt come from the ApplicationServices and Quartz frameworks, which
pynput already loads there through PyObjC.
"""

from __future__ import annotations

import contextlib
import subprocess

WHY = (
    "Hotkeys that work while a game or Discord has the focus need to see the keys you type in "
    "other programs; macOS allows that only to apps you list under System Settings -> Privacy "
    "& Security -> Accessibility (and Input Monitoring). voicegui only looks for the hotkeys "
    "you set and never records or sends anything you type. After allowing it, press Try again "
    "(or restart voicegui)."
)
SETTINGS_URL = "x-apple.systempreferences:com.apple.preference.security?Privacy_Accessibility"


def trusted() -> bool:
    """The app may listen to keys typed in other programs (False when it cannot tell)."""
    try:
        import HIServices  # PyObjC, installed with pynput on macOS
    except ImportError:
        return False
    if not HIServices.AXIsProcessTrusted():
        return False
    try:
        import Quartz

        preflight = getattr(Quartz, "CGPreflightListenEventAccess", None)
        return bool(preflight()) if preflight is not None else True
    except ImportError:
        return True


def ask() -> bool:
    """Show the system's prompt (once per app; later it only opens Settings); True if granted."""
    try:
        import HIServices

        options = {HIServices.kAXTrustedCheckOptionPrompt: True}
        granted = bool(HIServices.AXIsProcessTrustedWithOptions(options))
    except ImportError:
        granted = False
    try:
        import Quartz

        request = getattr(Quartz, "CGRequestListenEventAccess", None)
        if request is not None:
            granted = bool(request()) and granted
    except ImportError:
        pass
    if not granted:
        open_settings()
    return granted


def open_settings() -> None:
    """Open System Settings at the Accessibility list."""
    with contextlib.suppress(OSError):
        subprocess.Popen(["open", SETTINGS_URL])
