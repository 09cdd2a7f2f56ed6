"""The hotkeys dialog (real widgets, offscreen): set a hotkey by pressing it, refusals with a
message, clearing, the push-to-talk switch, and what it says about the listener."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from voicegui.hotkeys.backend import BackendStatus
from voicegui.hotkeys.bindings import Bindings, parse
from voicegui.ui.hotkeys_dialog import HotkeysDialog

K, M = Qt.Key, Qt.KeyboardModifier
X11 = BackendStatus("X11", True, "Global hotkeys: X11")


@pytest.fixture
def dialog(app, qtbot):
    def make(bindings=None, status=X11, check=lambda combo: "", **kw):
        d = HotkeysDialog(bindings or Bindings(), status, check=check, platform="linux", **kw)
        qtbot.addWidget(d)
        d.show()
        return d

    return make


def press(qtbot, d, action, key, mods=M.NoModifier, text=""):
    button = d.buttons[action]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert button.capturing and button.text() == "Press the keys…"
    qtbot.keyClick(button, key, mods)


def test_a_hotkey_is_set_by_pressing_it(dialog, qtbot):
    d = dialog()
    press(qtbot, d, "push_to_talk", K.Key_F9, M.ControlModifier)
    assert d.bindings.get("push_to_talk") == parse("ctrl+f9")
    assert d.buttons["push_to_talk"].text() == "Ctrl+F9"
    assert not d.buttons["push_to_talk"].capturing
    assert d.message.text() == ""
    # a shifted symbol is read as its key: Ctrl+Shift+! is Ctrl+Shift+1
    press(qtbot, d, "preset_1", K.Key_Exclam, M.ControlModifier | M.ShiftModifier)
    assert d.bindings.get("preset_1") == parse("ctrl+shift+1")


def test_a_modifier_alone_waits_for_the_key_and_esc_cancels(dialog, qtbot):
    d = dialog(Bindings().with_key("mute", parse("ctrl+alt+m")))
    button = d.buttons["mute"]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(button, K.Key_Control, M.ControlModifier)
    assert button.capturing and button.text() == "Ctrl+…"
    qtbot.keyClick(button, K.Key_Escape)
    assert not button.capturing
    assert d.bindings.get("mute") == parse("ctrl+alt+m")  # unchanged
    assert button.text() == "Ctrl+Alt+M"


@pytest.mark.parametrize(
    ("key", "mods", "why"),
    [
        (K.Key_M, M.NoModifier, "would fire whenever you type"),
        (K.Key_M, M.ShiftModifier, "would fire whenever you type"),
        (K.Key_5, M.KeypadModifier | M.ControlModifier, "keypad keys"),
        (K.Key_VolumeUp, M.ControlModifier, "cannot be used as a hotkey"),
        (K.Key_F2, M.ControlModifier | M.AltModifier, "text console"),
    ],
)
def test_what_cannot_work_is_refused_with_a_message(dialog, qtbot, key, mods, why):
    d = dialog()
    press(qtbot, d, "record", key, mods)
    assert d.bindings.get("record") is None
    assert d.message.text().startswith("Not set:") and why in d.message.text()


def test_a_combination_another_action_has_is_refused(dialog, qtbot):
    d = dialog(Bindings().with_key("bypass", parse("ctrl+alt+b")))
    press(qtbot, d, "mute", K.Key_B, M.ControlModifier | M.AltModifier)
    assert d.bindings.get("mute") is None
    assert "already the hotkey for Bypass" in d.message.text()
    # freed by Clear, it can be given to the other action
    qtbot.mouseClick(d.clear_buttons["bypass"], Qt.MouseButton.LeftButton)
    assert d.bindings.get("bypass") is None and d.buttons["bypass"].text() == "(none)"
    press(qtbot, d, "mute", K.Key_B, M.ControlModifier | M.AltModifier)
    assert d.bindings.get("mute") == parse("ctrl+alt+b") and d.message.text() == ""


def test_what_the_listener_cannot_see_is_refused(dialog, qtbot):
    d = dialog(check=lambda combo: "this keyboard has no F24 key" if combo.key == "f24" else "")
    press(qtbot, d, "record", K.Key_F24)
    assert d.bindings.get("record") is None and "no F24 key" in d.message.text()
    press(qtbot, d, "record", K.Key_F12)
    assert d.bindings.get("record") == parse("f12")


def test_push_to_talk_switch_needs_a_key(dialog, qtbot):
    d = dialog()
    assert not d.ptt_box.isEnabled()
    press(qtbot, d, "push_to_talk", K.Key_Pause)
    assert d.ptt_box.isEnabled() and d.ptt_box.isChecked()
    assert d.bindings.push_to_talk_active
    d.ptt_box.setChecked(False)
    assert not d.bindings.push_to_talk_active and d.bindings.get("push_to_talk") is not None


def test_capturing_pauses_the_global_listener(dialog, qtbot):
    d = dialog()
    seen: list[bool] = []
    d.capturing.connect(seen.append)
    press(qtbot, d, "mute", K.Key_F7, M.AltModifier)
    assert seen == [True, False]


def test_it_says_which_listener_runs_or_why_none(dialog, qtbot):
    d = dialog()
    assert "Global hotkeys: X11" in d.status_label.text()
    assert not d.permission_button.isVisibleTo(d) and not d.retry_button.isVisibleTo(d)
    asked: list[bool] = []
    mac = BackendStatus("macOS", False, "macOS: needs the Accessibility permission",
                        needs_permission=True, detail="Why: ...")  # fmt: skip
    d = dialog(status=mac, ask_permission=lambda: asked.append(True),
               retry=lambda: BackendStatus("macOS", True, "Global hotkeys: macOS"))  # fmt: skip
    assert "needs the Accessibility permission" in d.status_label.text()
    assert d.permission_button.isVisibleTo(d) and d.detail_label.text() == "Why: ..."
    qtbot.mouseClick(d.permission_button, Qt.MouseButton.LeftButton)
    assert asked == [True]
    qtbot.mouseClick(d.retry_button, Qt.MouseButton.LeftButton)
    assert "Global hotkeys: macOS" in d.status_label.text()
    assert not d.permission_button.isVisibleTo(d)


def test_preset_rows_name_the_preset_they_load(dialog, qtbot):
    d = dialog(preset_names=lambda slot: {1: "Deeper", 2: "Giant"}.get(slot, ""))
    texts = [d.buttons[f"preset_{i}"].accessibleName() for i in (1, 2)]
    assert texts == ["Hotkey for Preset 1", "Hotkey for Preset 2"]
    labels = {w.text() for w in d.findChildren(type(d.message))}
    assert "Preset 1 (Deeper)" in labels and "Preset 3 (no preset in this place)" in labels
