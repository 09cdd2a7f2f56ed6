"""The hotkeys dialog: set each hotkey by pressing it, clear it, see whether they can work here.

A combination is refused with a message when another action has it, when the system keeps it,
when it would fire while typing in other programs, or when the listener here cannot see it (a key
this keyboard lacks). The top line says which listener runs (X11, Windows, macOS, the Wayland
portal) or why none can; on macOS it offers to ask for the Accessibility permission.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from voicegui.hotkeys.backend import BackendStatus
from voicegui.hotkeys.bindings import (
    ACTIONS,
    FUNCTION_KEYS,
    LETTERS,
    PUNCTUATION,
    Bindings,
    HotkeyError,
    KeyCombo,
    label,
)

K = Qt.Key
_QT_KEYS: dict[int, str] = {
    **{int(getattr(K, f"Key_{c.upper()}")): c for c in LETTERS},
    **{int(getattr(K, f"Key_{d}")): str(d) for d in range(10)},
    **{int(getattr(K, f"Key_{f.upper()}")): f for f in FUNCTION_KEYS},
    int(K.Key_Minus): "minus", int(K.Key_Equal): "equal", int(K.Key_BracketLeft): "bracket_left",
    int(K.Key_BracketRight): "bracket_right", int(K.Key_Backslash): "backslash",
    int(K.Key_Semicolon): "semicolon", int(K.Key_Apostrophe): "apostrophe",
    int(K.Key_QuoteLeft): "grave", int(K.Key_Comma): "comma", int(K.Key_Period): "period",
    int(K.Key_Slash): "slash", int(K.Key_Space): "space", int(K.Key_Return): "enter",
    int(K.Key_Tab): "tab", int(K.Key_Backtab): "tab", int(K.Key_Backspace): "backspace",
    int(K.Key_Escape): "escape", int(K.Key_Insert): "insert", int(K.Key_Delete): "delete",
    int(K.Key_Home): "home", int(K.Key_End): "end", int(K.Key_PageUp): "page_up",
    int(K.Key_PageDown): "page_down", int(K.Key_Up): "up", int(K.Key_Down): "down",
    int(K.Key_Left): "left", int(K.Key_Right): "right", int(K.Key_Pause): "pause",
    int(K.Key_Print): "print_screen", int(K.Key_ScrollLock): "scroll_lock",
    int(K.Key_CapsLock): "caps_lock", int(K.Key_NumLock): "num_lock", int(K.Key_Menu): "menu",
}  # fmt: skip
# what Shift turns the main block's keys into on a US layout: back to the key itself
_SHIFTED = {
    "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9",
    ")": "0", "_": "minus", "+": "equal", "{": "bracket_left", "}": "bracket_right",
    "|": "backslash", ":": "semicolon", '"': "apostrophe", "~": "grave", "<": "comma",
    ">": "period", "?": "slash",
}  # fmt: skip
_KEY_MODIFIER = {
    int(K.Key_Control): Qt.KeyboardModifier.ControlModifier,
    int(K.Key_Shift): Qt.KeyboardModifier.ShiftModifier,
    int(K.Key_Alt): Qt.KeyboardModifier.AltModifier,
    int(K.Key_Meta): Qt.KeyboardModifier.MetaModifier,
    int(K.Key_Super_L): Qt.KeyboardModifier.MetaModifier,
    int(K.Key_Super_R): Qt.KeyboardModifier.MetaModifier,
}
PUNCTUATION_BY_CHAR = {char: name for name, char in PUNCTUATION.items()}
_MODIFIER_KEYS = {int(K.Key_Control), int(K.Key_Shift), int(K.Key_Alt), int(K.Key_Meta),
                  int(K.Key_Super_L), int(K.Key_Super_R), int(K.Key_AltGr)}  # fmt: skip


def modifiers_from_qt(mods: Qt.KeyboardModifier, platform: str = sys.platform) -> frozenset[str]:
    found = set()
    M = Qt.KeyboardModifier
    # Qt on macOS reports Command as Control and the Control key as Meta
    ctrl, meta = (M.MetaModifier, M.ControlModifier) if platform == "darwin" else (
        M.ControlModifier, M.MetaModifier)  # fmt: skip
    if mods & ctrl:
        found.add("ctrl")
    if mods & meta:
        found.add("super")
    if mods & M.AltModifier:
        found.add("alt")
    if mods & M.ShiftModifier:
        found.add("shift")
    return frozenset(found)


def combo_from_qt(
    key: int, mods: Qt.KeyboardModifier, text: str = "", platform: str = sys.platform
) -> KeyCombo:
    """A key press seen by Qt -> KeyCombo; HotkeyError saying why it cannot be one."""
    if key in _MODIFIER_KEYS:
        raise HotkeyError("a modifier alone is not a hotkey; hold it and press a key")
    if mods & Qt.KeyboardModifier.KeypadModifier and key not in (int(K.Key_NumLock),):
        raise HotkeyError(
            "keypad keys cannot be told apart from the main keys on every system; use another key"
        )
    name = _QT_KEYS.get(key)
    if name is None and 0x20 < key < 0x7F:
        name = _SHIFTED.get(chr(key)) or PUNCTUATION_BY_CHAR.get(chr(key))
    if name is None:
        shown = text.strip() or f"key {key:#x}"
        raise HotkeyError(f"{shown} cannot be used as a hotkey; choose another key")
    return KeyCombo(name, modifiers_from_qt(mods, platform))


class ComboButton(QPushButton):
    """Shows a combination; click, then press the keys to set it (Esc cancels)."""

    captured = Signal(object)  # KeyCombo, or HotkeyError
    capturingChanged = Signal(bool)

    def __init__(self, combo: KeyCombo | None, platform: str = sys.platform) -> None:
        super().__init__()
        self.platform = platform
        self.combo = combo
        self.capturing = False
        self.setMinimumWidth(170)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.clicked.connect(self.start_capture)
        self._show()

    def _show(self) -> None:
        if self.capturing:
            self.setText("Press the keys…")
        else:
            self.setText(label(self.combo, self.platform) or "(none)")

    def set_combo(self, combo: KeyCombo | None) -> None:
        self.combo = combo
        self._show()

    def start_capture(self) -> None:
        self.capturing = True
        self._show()
        self.setFocus()
        self.grabKeyboard()
        self.capturingChanged.emit(True)

    def stop_capture(self) -> None:
        if self.capturing:
            self.capturing = False
            self.releaseKeyboard()
            self._show()
            self.capturingChanged.emit(False)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if not self.capturing:
            super().keyPressEvent(event)
            return
        event.accept()
        key, mods = int(event.key()), event.modifiers()
        if key in _MODIFIER_KEYS:
            # the modifier being pressed may not be in the event's modifiers yet on every system
            held = modifiers_from_qt(mods | _KEY_MODIFIER.get(key, mods), self.platform)
            names = [label(KeyCombo("f1", frozenset({m})), self.platform).split("+")[0]
                     for m in ("ctrl", "alt", "shift", "super") if m in held]  # fmt: skip
            self.setText("+".join([*names, "…"]))
            return
        if key == int(K.Key_Escape) and not (mods & ~Qt.KeyboardModifier.KeypadModifier):
            self.stop_capture()
            return
        try:
            result: object = combo_from_qt(key, mods, event.text(), self.platform)
        except HotkeyError as exc:
            result = exc
        self.stop_capture()
        self.captured.emit(result)

    def focusOutEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.stop_capture()
        super().focusOutEvent(event)


class HotkeysDialog(QDialog):
    """Edits a copy of the bindings; ``bindings`` holds the result once accepted."""

    capturing = Signal(bool)  # a button waits for keys: the global listener should pause

    def __init__(
        self,
        bindings: Bindings,
        status: BackendStatus,
        check: Callable[[KeyCombo], str] = lambda combo: "",
        preset_names: Callable[[int], str] = lambda slot: "",
        ask_permission: Callable[[], None] | None = None,
        retry: Callable[[], BackendStatus] | None = None,
        parent: QWidget | None = None,
        platform: str = sys.platform,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hotkeys")
        self.bindings = bindings
        self.platform = platform
        self._check = check
        self._retry = retry
        self.buttons: dict[str, ComboButton] = {}
        self.clear_buttons: dict[str, QPushButton] = {}

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setAccessibleName("Global hotkeys status")
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        self.permission_button = QPushButton("Allow in System Settings…")
        self.permission_button.setToolTip(
            "Shows macOS's prompt, or opens Privacy & Security -> Accessibility"
        )
        if ask_permission is not None:
            self.permission_button.clicked.connect(ask_permission)
        self.retry_button = QPushButton("Try again")
        self.retry_button.clicked.connect(self._on_retry)
        top = QHBoxLayout()
        top.addWidget(self.status_label, 1)
        top.addWidget(self.permission_button)
        top.addWidget(self.retry_button)

        grid = QGridLayout()
        for row, action in enumerate(ACTIONS):
            text = action.label
            slot = action.id.removeprefix("preset_")
            if slot.isdigit():
                name = preset_names(int(slot))
                text += f" ({name})" if name else " (no preset in this place)"
            name_label = QLabel(text)
            button = ComboButton(bindings.get(action.id), platform)
            button.setAccessibleName(f"Hotkey for {action.label}")
            button.captured.connect(lambda result, a=action.id: self._captured(a, result))
            button.capturingChanged.connect(self.capturing)
            clear = QPushButton("Clear")
            clear.setAccessibleName(f"Clear the hotkey for {action.label}")
            clear.clicked.connect(lambda _=False, a=action.id: self.set_key(a, None))
            name_label.setBuddy(button)
            grid.addWidget(name_label, row, 0)
            grid.addWidget(button, row, 1)
            grid.addWidget(clear, row, 2)
            self.buttons[action.id] = button
            self.clear_buttons[action.id] = clear
        table = QWidget()
        table.setLayout(grid)
        scroll = QScrollArea()
        scroll.setWidget(table)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.ptt_box = QCheckBox(
            "Push-to-talk: the voice is heard only while its key is held (silent otherwise)"
        )
        self.ptt_box.setChecked(bindings.push_to_talk)
        self.ptt_box.toggled.connect(self._on_ptt)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Hotkey message")
        self.message.setStyleSheet("color: #c62828;")
        hint = QLabel(
            "Click a hotkey, then press the keys. Esc cancels. The keys still reach the program "
            "that has the focus."
        )
        hint.setWordWrap(True)
        box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.detail_label)
        lay.addWidget(hint)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.ptt_box)
        lay.addWidget(self.message)
        lay.addWidget(box)
        self.resize(560, 640)
        self.show_status(status)
        self._update_ptt()

    # ---- state -------------------------------------------------------------------------------
    def show_status(self, status: BackendStatus) -> None:
        self.status_label.setText(f"<b>{status.text}</b>")
        self.detail_label.setText(status.detail)
        self.detail_label.setVisible(bool(status.detail))
        self.permission_button.setVisible(status.needs_permission)
        self.retry_button.setVisible(status.needs_permission or not status.usable)

    def _on_retry(self) -> None:
        if self._retry is not None:
            self.show_status(self._retry())

    def set_key(self, action: str, combo: KeyCombo | None) -> bool:
        """Give ``action`` the combination (None clears it); False, with a message, if refused."""
        why = ""
        if combo is not None:
            why = self.bindings.check(action, combo, self.platform) or self._check(combo)
        if why:
            self.message.setText(f"Not set: {why}.")
            return False
        try:
            self.bindings = self.bindings.with_key(action, combo, self.platform)
        except HotkeyError as exc:
            self.message.setText(f"Not set: {exc}.")
            return False
        self.buttons[action].set_combo(combo)
        self.message.setText("")
        self._update_ptt()
        return True

    def _captured(self, action: str, result: object) -> None:
        if isinstance(result, HotkeyError):
            self.message.setText(f"Not set: {result}.")
            return
        assert isinstance(result, KeyCombo)
        self.set_key(action, result)

    def _on_ptt(self, on: bool) -> None:
        self.bindings = self.bindings.with_push_to_talk(on)

    def _update_ptt(self) -> None:
        bound = self.bindings.get("push_to_talk") is not None
        self.ptt_box.setEnabled(bound)
        self.ptt_box.setToolTip("" if bound else "Set a push-to-talk key first")

    def done(self, result: int) -> None:
        for button in self.buttons.values():
            button.stop_capture()
        super().done(result)
