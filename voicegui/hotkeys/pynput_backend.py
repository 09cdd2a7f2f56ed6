"""Global hotkeys through pynput: X11 (RECORD extension), Windows (low-level keyboard hook) and
macOS (event tap, with the Accessibility permission).

pynput only listens: the keys still reach the program that has the focus. Its callbacks run on
its own thread (inside the hook on Windows, which the system drops when it is slow), so they only
turn each key into a token, run the combination matcher and hand the action on.

Keys are named by their unshifted meaning so that Ctrl+Shift+1 is "ctrl+shift+1" and not
"ctrl+shift+!": on X11 the keyboard map gives the key's unshifted symbol; on Windows and macOS
the virtual key code does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from voicegui.hotkeys.backend import BackendStatus, Emit, HotkeyBackendError
from voicegui.hotkeys.bindings import FUNCTION_KEYS, LETTERS, Bindings, KeyCombo, label
from voicegui.hotkeys.matcher import ComboMatcher

log = logging.getLogger(__name__)

START_TIMEOUT = 5.0  # s for the listener to report ready

# ---- key tables ------------------------------------------------------------------------------

# X keysym names -> tokens (keys of bindings.KEYS, or side-specific modifiers)
X11_NAMES: dict[str, str] = {
    **{c: c for c in LETTERS},
    **{str(d): str(d) for d in range(10)},
    "minus": "minus", "equal": "equal", "bracketleft": "bracket_left",
    "bracketright": "bracket_right", "backslash": "backslash", "semicolon": "semicolon",
    "apostrophe": "apostrophe", "grave": "grave", "comma": "comma", "period": "period",
    "slash": "slash", "space": "space", "Return": "enter", "Tab": "tab", "ISO_Left_Tab": "tab",
    "BackSpace": "backspace", "Escape": "escape", "Insert": "insert", "Delete": "delete",
    "Home": "home", "End": "end", "Prior": "page_up", "Next": "page_down", "Up": "up",
    "Down": "down", "Left": "left", "Right": "right", "Pause": "pause", "Print": "print_screen",
    "Scroll_Lock": "scroll_lock", "Caps_Lock": "caps_lock", "Num_Lock": "num_lock",
    "Menu": "menu",
    **{f"F{i}": f"f{i}" for i in range(1, 25)},
    "Control_L": "ctrl_l", "Control_R": "ctrl_r", "Shift_L": "shift_l", "Shift_R": "shift_r",
    "Alt_L": "alt_l", "Alt_R": "alt_r", "Meta_L": "alt_l", "Meta_R": "alt_r",
    "Super_L": "super_l", "Super_R": "super_r",
}  # fmt: skip
X11_KEYSYM_NAME = {token: name for name, token in reversed(list(X11_NAMES.items()))}

# Windows virtual-key codes -> tokens (the punctuation codes are the US layout's)
WINDOWS_VK: dict[int, str] = {
    **{0x41 + i: c for i, c in enumerate(LETTERS)},
    **{0x30 + d: str(d) for d in range(10)},
    **{0x70 + i: f for i, f in enumerate(FUNCTION_KEYS)},
    0xBA: "semicolon", 0xBB: "equal", 0xBC: "comma", 0xBD: "minus", 0xBE: "period",
    0xBF: "slash", 0xC0: "grave", 0xDB: "bracket_left", 0xDC: "backslash",
    0xDD: "bracket_right", 0xDE: "apostrophe",
    0x08: "backspace", 0x09: "tab", 0x0D: "enter", 0x1B: "escape", 0x20: "space",
    0x21: "page_up", 0x22: "page_down", 0x23: "end", 0x24: "home", 0x25: "left", 0x26: "up",
    0x27: "right", 0x28: "down", 0x2C: "print_screen", 0x2D: "insert", 0x2E: "delete",
    0x13: "pause", 0x14: "caps_lock", 0x90: "num_lock", 0x91: "scroll_lock", 0x5D: "menu",
    0x10: "shift", 0xA0: "shift_l", 0xA1: "shift_r", 0x11: "ctrl", 0xA2: "ctrl_l",
    0xA3: "ctrl_r", 0x12: "alt", 0xA4: "alt_l", 0xA5: "alt_r", 0x5B: "super_l", 0x5C: "super_r",
}  # fmt: skip

# macOS virtual key codes (kVK_*, the ANSI layout's positions) -> tokens
MACOS_VK: dict[int, str] = {
    0x00: "a", 0x01: "s", 0x02: "d", 0x03: "f", 0x04: "h", 0x05: "g", 0x06: "z", 0x07: "x",
    0x08: "c", 0x09: "v", 0x0B: "b", 0x0C: "q", 0x0D: "w", 0x0E: "e", 0x0F: "r", 0x10: "y",
    0x11: "t", 0x12: "1", 0x13: "2", 0x14: "3", 0x15: "4", 0x16: "6", 0x17: "5", 0x18: "equal",
    0x19: "9", 0x1A: "7", 0x1B: "minus", 0x1C: "8", 0x1D: "0", 0x1E: "bracket_right",
    0x1F: "o", 0x20: "u", 0x21: "bracket_left", 0x22: "i", 0x23: "p", 0x25: "l", 0x26: "j",
    0x27: "apostrophe", 0x28: "k", 0x29: "semicolon", 0x2A: "backslash", 0x2B: "comma",
    0x2C: "slash", 0x2D: "n", 0x2E: "m", 0x2F: "period", 0x32: "grave",
    0x24: "enter", 0x30: "tab", 0x31: "space", 0x33: "backspace", 0x35: "escape",
    0x37: "super_l", 0x36: "super_r", 0x38: "shift_l", 0x3C: "shift_r", 0x3A: "alt_l",
    0x3D: "alt_r", 0x3B: "ctrl_l", 0x3E: "ctrl_r", 0x39: "caps_lock",
    0x7A: "f1", 0x78: "f2", 0x63: "f3", 0x76: "f4", 0x60: "f5", 0x61: "f6", 0x62: "f7",
    0x64: "f8", 0x65: "f9", 0x6D: "f10", 0x67: "f11", 0x6F: "f12", 0x69: "f13", 0x6B: "f14",
    0x71: "f15", 0x6A: "f16", 0x40: "f17", 0x4F: "f18", 0x50: "f19", 0x5A: "f20",
    0x72: "insert", 0x73: "home", 0x74: "page_up", 0x75: "delete", 0x77: "end",
    0x79: "page_down", 0x7B: "left", 0x7C: "right", 0x7D: "down", 0x7E: "up",
}  # fmt: skip


class X11Keymap:
    """Keysyms of the X keyboard map, through a connection of its own (python-xlib)."""

    def __init__(self, display: Any = None) -> None:
        import Xlib.display

        self.display = display or Xlib.display.Display()
        self._lock = threading.Lock()
        self._tokens: dict[int, str | None] = {}

    def has_record(self) -> bool:
        return self.display.has_extension("RECORD")

    def token(self, keysym: int) -> str | None:
        """The token of the key that produces ``keysym`` (by its unshifted symbol)."""
        cached = self._tokens.get(keysym, "")
        if cached != "":
            return cached
        with self._lock:
            keycode = self.display.keysym_to_keycode(keysym)
            base = self.display.keycode_to_keysym(keycode, 0) if keycode else 0
        table = _keysym_tokens()
        token = table.get(base) or table.get(keysym)
        self._tokens[keysym] = token
        return token

    def missing(self, key: str) -> bool:
        """True when no key of this keyboard map produces ``key``."""
        from Xlib import XK

        name = X11_KEYSYM_NAME.get(key)
        if name is None:
            return True
        keysym = XK.string_to_keysym(name)
        with self._lock:
            return not keysym or not self.display.keysym_to_keycode(keysym)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.display.close()


_KEYSYM_TOKENS: dict[int, str] = {}


def _keysym_tokens() -> dict[int, str]:
    """keysym -> token for every name in X11_NAMES."""
    if not _KEYSYM_TOKENS:
        from Xlib import XK

        for name, token in X11_NAMES.items():
            keysym = XK.string_to_keysym(name)
            if keysym:
                _KEYSYM_TOKENS.setdefault(keysym, token)
    return _KEYSYM_TOKENS


def vk_token(key: Any, kind: str) -> str | None:
    """A pynput key (Key or KeyCode) -> token, on Windows and macOS."""
    code = getattr(key, "value", key)  # a Key member holds its KeyCode
    if getattr(code, "_is_media", False):
        return None  # media keys reuse small numbers that are letters here
    vk = getattr(code, "vk", None)
    table = WINDOWS_VK if kind == "Windows" else MACOS_VK
    if vk is not None and vk in table:
        return table[vk]
    return None


class PynputBackend:
    def __init__(self, kind: str, wayland_note: str = "") -> None:
        self.kind = kind  # "X11", "Windows", "macOS"
        self.wayland_note = wayland_note  # X11 under Wayland: only X programs' keys are seen
        self._listener: Any = None
        self._keymap: X11Keymap | None = None
        self._status: BackendStatus | None = None
        self._error = ""
        self._matcher: ComboMatcher | None = None
        self._matcher_lock = threading.Lock()
        self._emit: Emit = lambda action, pressed: None

    # ---- probing -----------------------------------------------------------------------------
    def status(self) -> BackendStatus:
        if self._error:
            return BackendStatus(self.kind, False, f"{self.kind}: {self._error}")
        if self.kind == "macOS":
            return self._macos_status()  # the permission can be granted while the app runs
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> BackendStatus:
        if self.kind != "X11":
            return BackendStatus(self.kind, True, f"Global hotkeys: {self.kind}")
        try:
            keymap = self._x11_keymap()
        except Exception as exc:
            return BackendStatus("X11", False, f"X11: cannot connect to the display ({exc})")
        if not keymap.has_record():
            return BackendStatus(
                "X11", False, "X11: the X server lacks the RECORD extension that global "
                "hotkeys need",
            )  # fmt: skip
        if self.wayland_note:
            return BackendStatus(
                "X11",
                True,
                "Wayland: global hotkeys are not offered by this desktop; only keys typed in "
                "X11 programs are seen",
                detail=self.wayland_note,
            )
        return BackendStatus("X11", True, "Global hotkeys: X11")

    def _macos_status(self) -> BackendStatus:
        from voicegui.hotkeys import macos

        if macos.trusted():
            return BackendStatus("macOS", True, "Global hotkeys: macOS")
        return BackendStatus(
            "macOS",
            False,
            "macOS: needs the Accessibility permission",
            needs_permission=True,
            detail=macos.WHY,
        )

    def _x11_keymap(self) -> X11Keymap:
        if self._keymap is None:
            self._keymap = X11Keymap()
        return self._keymap

    def check(self, combo: KeyCombo) -> str:
        if self.kind == "X11":
            try:
                if self._x11_keymap().missing(combo.key):
                    return f"this keyboard has no {label(KeyCombo(combo.key))} key"
            except Exception:
                return ""  # no display to ask: the status says so
        table = {"Windows": WINDOWS_VK, "macOS": MACOS_VK}.get(self.kind)
        if table is not None and combo.key not in table.values():
            return f"{self.kind} keyboards have no {label(KeyCombo(combo.key))} key"
        return ""

    # ---- listening ---------------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        listener = self._listener
        return listener is not None and listener.running and listener.is_alive()

    def token(self, key: Any) -> str | None:
        if key is None:
            return None
        if self.kind == "X11":
            code = getattr(key, "value", key)
            vk = getattr(code, "vk", None)
            return self._x11_keymap().token(vk) if vk else None
        return vk_token(key, self.kind)

    def start(self, bindings: Bindings, emit: Emit) -> None:
        self.stop()
        status = self.status()
        if not status.usable:
            # macOS without the permission: a listener would hear nothing, and push-to-talk
            # would keep the voice silent behind a key nobody sees
            raise HotkeyBackendError(status.text)
        try:
            from pynput import keyboard
        except Exception as exc:  # pynput connects to the display on import
            self._error = f"the key listener cannot start ({exc})"
            raise HotkeyBackendError(f"{self.kind}: {self._error}") from exc
        matcher = ComboMatcher(bindings)
        lock = threading.Lock()

        def feed(key: Any, down: bool) -> None:
            try:
                token = self.token(key)
                if token is None:
                    return
                with lock:
                    events = matcher.press(token) if down else matcher.release(token)
                for action, pressed in events:
                    emit(action, pressed)
            except Exception:  # a listener callback must never raise (it would end the listener)
                log.exception("hotkey listener callback failed")

        listener = keyboard.Listener(
            on_press=lambda key, injected=False: feed(key, True),
            on_release=lambda key, injected=False: feed(key, False),
        )
        listener.daemon = True
        listener.name = "voicegui-hotkeys-listener"
        listener.start()
        if not _wait_ready(listener, START_TIMEOUT):
            listener.stop()
            self._error = "the key listener did not start"
            raise HotkeyBackendError(f"{self.kind}: {self._error}")
        self._listener = listener
        self._matcher, self._matcher_lock = matcher, lock
        self._emit = emit
        log.info("global hotkeys listening (%s)", self.kind)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            if self.kind == "X11":
                self._wake_x11(listener)
            if listener is not threading.current_thread():
                listener.join(2.0)
            with self._matcher_lock:
                ended = self._matcher.release_all() if self._matcher is not None else []
            for action, pressed in ended:
                self._emit(action, pressed)

    def _wake_x11(self, listener: Any) -> None:
        """pynput asks its recording connection to stop but does not flush the request, so its
        thread waits for the next key; the same request on a connection of ours (flushed) ends
        the recording at once."""
        context = getattr(listener, "_context", None)
        if context is None or self._keymap is None:
            return
        with contextlib.suppress(Exception), self._keymap._lock:
            self._keymap.display.record_disable_context(context)
            self._keymap.display.sync()


def _wait_ready(listener: Any, timeout: float) -> bool:
    """pynput's ``wait`` has no timeout and never returns when its thread fails first."""
    ready = threading.Event()
    threading.Thread(
        target=lambda: (listener.wait(), ready.set()), name="voicegui-hotkeys-wait", daemon=True
    ).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.02):
        if not listener.is_alive() or time.monotonic() > deadline:
            return False
    return listener.is_alive()
