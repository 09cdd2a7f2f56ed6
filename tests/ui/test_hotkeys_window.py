"""Hotkeys in the window: saved with the app's state and restored at start (a corrupt entry
costs only that entry), the dialog from the menu, preset slots and next/previous, and the
indicator. The keys themselves, typed into another program, are in test_hotkeys_x11.py."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import close_window, open_window
from voicegui import paths
from voicegui.hotkeys.backend import BackendStatus
from voicegui.hotkeys.bindings import Bindings, parse
from voicegui.ui.hotkeys_dialog import HotkeysDialog

pytestmark = pytest.mark.jack


def state_file():
    return paths.config_dir() / "state.json"


def saved() -> dict:
    try:
        return json.loads(state_file().read_text("utf-8"))
    except FileNotFoundError:
        return {}


def test_hotkeys_set_in_the_dialog_come_back_at_the_next_start(window, qtbot):
    hk = window.hotkeys
    audio = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Audio")
    for action in (hk.dialog_action, hk.mute_action, hk.ptt_action):
        assert action in audio.actions()
    hk.dialog_action.trigger()
    d = hk.dialog
    assert isinstance(d, HotkeysDialog) and d.isVisible()
    ctrl_alt = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
    for action, key, mods in (
        ("push_to_talk", Qt.Key.Key_F9, Qt.KeyboardModifier.NoModifier),
        ("mute", Qt.Key.Key_M, ctrl_alt),
        ("preset_2", Qt.Key.Key_2, ctrl_alt),
    ):
        qtbot.mouseClick(d.buttons[action], Qt.MouseButton.LeftButton)
        qtbot.keyClick(d.buttons[action], key, mods)
    d.ptt_box.setChecked(False)
    d.accept()
    expected = {"push_to_talk": "f9", "mute": "ctrl+alt+m", "preset_2": "ctrl+alt+2"}
    assert hk.bindings.to_dict() == {"keys": expected, "push_to_talk": False}
    qtbot.waitUntil(lambda: "hotkeys" in saved(), timeout=3000)
    assert saved()["hotkeys"]["keys"] == expected
    close_window(window)

    again = open_window(qtbot)
    try:
        assert again.hotkeys.bindings.to_dict() == {"keys": expected, "push_to_talk": False}
        assert not again.hotkeys.ptt_action.isChecked() and again.hotkeys.ptt_action.isEnabled()
    finally:
        close_window(again)


def test_a_corrupt_hotkey_entry_costs_only_that_entry(app, qtbot, jack_server):
    state_file().parent.mkdir(parents=True, exist_ok=True)
    state_file().write_text(
        json.dumps(
            {"hotkeys": {"keys": {"mute": "ctrl+alt+m", "bypass": "ctrl+@@", "record": ["f5"]}}}
        ),  # fmt: skip
        encoding="utf-8",
    )
    w = open_window(qtbot)
    try:
        assert w.hotkeys.bindings.keys == {"mute": parse("ctrl+alt+m")}
        texts = "\n".join(w.banners.texts())
        assert "hotkey for Bypass" in texts and "hotkey for Record" in texts
    finally:
        close_window(w)
    # a hotkeys entry of the wrong shape: no hotkeys, the app still opens
    state_file().write_text(json.dumps({"hotkeys": "f9"}), encoding="utf-8")
    w = open_window(qtbot)
    try:
        assert w.hotkeys.bindings.keys == {}
        assert any("saved hotkeys could not be read" in t for t in w.banners.texts())
    finally:
        close_window(w)


def test_preset_slots_and_next_previous_follow_the_presets_list(window, qtbot):
    hk = window.hotkeys
    names = hk.preset_names()
    assert len(names) >= 3
    hk.run_action("preset_3")
    assert window.presets.current == names[2] and window.presets.selected() == names[2]
    third = window.presets.store.load(names[2]).settings
    assert window.controller.settings.voice.pitch == third.voice.pitch
    hk.run_action("preset_next")
    assert window.presets.current == names[3 % len(names)]
    hk.run_action("preset_previous")
    hk.run_action("preset_previous")
    assert window.presets.current == names[1]
    window.presets.current = names[0]
    hk.run_action("preset_previous")  # wraps around
    assert window.presets.current == names[-1]
    hk.run_action(f"preset_{len(names) + 1}" if len(names) < 9 else "preset_9")
    if len(names) < 9:
        assert any("no preset" in t for t in window.banners.texts())


class ScriptedBackend:
    """A listener that listens to the test (the OS listeners are tested under Xvfb)."""

    kind = "X11"

    def __init__(self) -> None:
        self.listening = False
        self.emit = None

    def status(self):
        return BackendStatus("X11", True, "Global hotkeys: X11")

    def check(self, combo):
        return ""

    def start(self, bindings, emit):
        self.listening, self.emit = True, emit

    def stop(self):
        self.listening = False


def test_indicator_and_menu_follow_push_to_talk_mute_and_bypass(app, qtbot, jack_server):
    from voicegui.ui.hotkeys import WindowHotkeys

    w = open_window(qtbot)
    try:
        backend = ScriptedBackend()
        w.hotkeys.close()
        hk = w.hotkeys = WindowHotkeys(w, backend_factory=lambda: backend)
        host = w.controller.host
        hk.apply(Bindings().with_key("push_to_talk", parse("f9")))
        qtbot.waitUntil(lambda: hk.state is not None and hk.state.push_to_talk, timeout=3000)
        assert hk.indicator.texts() == ["PTT: silent"]
        assert host._talk == (True, False, False)  # what the audio host was told
        backend.emit("push_to_talk", True)
        qtbot.waitUntil(lambda: hk.indicator.texts() == ["PTT: talking"], timeout=3000)
        assert host._talk == (True, True, False)
        backend.emit("push_to_talk", False)
        hk.mute_action.trigger()
        qtbot.waitUntil(lambda: hk.indicator.texts() == ["PTT: silent", "MUTED"], timeout=3000)
        assert hk.mute_action.isChecked() and host._talk == (True, False, True)
        backend.emit("bypass", True)  # the engine is stopped: the settings still follow
        qtbot.waitUntil(lambda: w.controller.settings.engine.bypass, timeout=3000)
        assert hk.indicator.texts() == ["PTT: silent", "MUTED", "BYPASS"]
        w.bypass_button.click()  # the window's own button: the next hotkey toggles from there
        assert not w.controller.settings.engine.bypass
        qtbot.waitUntil(lambda: hk.indicator.texts() == ["PTT: silent", "MUTED"], timeout=3000)
        backend.emit("bypass", True)
        qtbot.waitUntil(lambda: w.controller.settings.engine.bypass, timeout=3000)
        # the listener dies: push-to-talk no longer gates (a key nobody hears must not silence)
        backend.listening = False
        qtbot.waitUntil(lambda: not hk.state.push_to_talk, timeout=3000)
        assert host._talk == (False, False, True)
        assert hk.indicator.texts()[0] == "PTT unavailable"
        assert any("Global hotkeys do not work: the key listener stopped" in t
                   for t in w.banners.texts())  # fmt: skip
        hk.close()
    finally:
        close_window(w)


def test_push_to_talk_survives_a_crashed_audio_host(app, qtbot, jack_server):
    """The audio host is told push-to-talk again when it comes back: a restarted engine starts
    silent, not open, and the key still opens it."""
    import numpy as np

    from tests.ui.conftest import pick_jack, start
    from voicegui.ui.hotkeys import WindowHotkeys

    w = open_window(qtbot)
    try:
        backend = ScriptedBackend()
        w.hotkeys.close()
        hk = w.hotkeys = WindowHotkeys(w, backend_factory=lambda: backend)
        c = w.controller
        pick_jack(w, qtbot)
        c.change(voice={"voice": "passthrough"}, engine={"block_time": 0.01})
        hk.apply(Bindings().with_key("push_to_talk", parse("f9")))
        qtbot.waitUntil(lambda: hk.state is not None and hk.state.push_to_talk, timeout=3000)
        rate = 48000
        tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)

        def run_tone() -> None:
            start(w, qtbot)
            c.engine.test_signal(tone)
            b0 = c.host.snapshot().blocks
            qtbot.waitUntil(lambda: c.host.snapshot().blocks > b0 + 20, timeout=5000)

        run_tone()
        assert c.host.snapshot().output_db == -120.0
        c.host.kill()
        qtbot.waitUntil(lambda: not c.running, timeout=5000)
        run_tone()  # Restart: a fresh audio host process
        assert c.host.starts == 2
        assert c.host.snapshot().output_db == -120.0  # still push-to-talk: silent
        backend.emit("push_to_talk", True)
        qtbot.waitUntil(lambda: c.host.snapshot().output_db > -20, timeout=3000)
        hk.close()
    finally:
        close_window(w)
