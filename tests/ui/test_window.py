"""The window itself: controls built from the Spec table, voices, keyboard access, error dialog."""

from __future__ import annotations

import importlib.util

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QMessageBox,
)

from voicegui import __version__, paths
from voicegui.settings import EngineSettings, VoiceSettings, spec_of
from voicegui.ui.controls import spec_fields
from voicegui.voices.catalog import voice_selectable
from voicegui.voices.registry import voice_available

pytestmark = pytest.mark.jack


def test_title_icon_and_minimum_size(window):
    assert __version__ in window.windowTitle()
    assert not window.windowIcon().isNull()
    assert window.minimumWidth() >= 960 and window.minimumHeight() >= 600
    assert (paths.resource("icons", "voicegui.svg")).is_file()


def test_controls_come_from_the_spec_table(window):
    controls = window.controls.controls
    names = {name for _, name, _, _ in spec_fields()}
    for wanted in (
        "block_time",
        "crossfade_time",
        "extra_left_time",
        "extra_dit_left_time",
        "extra_right_time",
        "diffusion_steps",
        "cfg_rate",
        "max_prompt_time",
        "pitch",
        "formant",
        "input_gain_db",
        "output_gain_db",
        "gate_threshold_db",
        "gate_hold_time",
    ):
        assert wanted in names
    for key, c in controls.items():
        part, name = key.split(".")
        spec = spec_of(EngineSettings if part == "engine" else VoiceSettings, name)
        assert c.spec == spec
        assert c.label.text() == spec.label
        assert spec.help in c.slider.toolTip()
        assert c.slider.maximum() == round((spec.hi - spec.lo) / spec.step)
        lo, hi = c.spin.minimum() / c.scale, c.spin.maximum() / c.scale
        assert (lo, hi) == pytest.approx((spec.lo, spec.hi))
        assert c.spin.suffix().strip() in (spec.unit, "ms")
        assert ("restarts the audio streams" in c.slider.toolTip()) == spec.restart
    # the value shown is the setting's value
    block = controls["engine.block_time"]
    assert block.spin.value() == pytest.approx(window.controller.settings.engine.block_time * 1e3)
    assert block.spin.suffix() == " ms"


def test_on_off_settings_are_check_boxes_from_the_flag_table(window):
    box, flag = window.controls.flags["voice.style_from_prompt"]
    assert box.text() == flag.label and flag.help in box.toolTip()
    assert box.isChecked() == window.controller.settings.voice.style_from_prompt
    box.setChecked(True)
    assert window.controller.settings.voice.style_from_prompt is True
    box.setChecked(False)
    assert window.controller.settings.voice.style_from_prompt is False
    window.voice.voice.setCurrentIndex(window.voice.voice.findData("dsp"))
    assert not box.isEnabled() and "Not used by this voice" in box.toolTip()


def test_what_plays_while_the_voice_fails_is_a_choice_of_three(window):
    box = window.controls.on_error
    assert [box.itemData(i) for i in range(box.count())] == ["dry", "builtin", "silence"]
    assert box.itemData(box.currentIndex()) == window.controller.settings.engine.on_voice_error
    box.setCurrentIndex(box.findData("builtin"))
    assert window.controller.settings.engine.on_voice_error == "builtin"
    assert "built-in voice" in box.currentText() and "Remote GPU" in box.toolTip()


def test_controls_the_voice_does_not_use_are_disabled_with_a_reason(window):
    c = window.controls
    window.voice.voice.setCurrentIndex(window.voice.voice.findData("dsp"))
    for name in ("diffusion_steps", "cfg_rate", "max_prompt_time"):
        ctl = c.control("voice", name)
        assert not ctl.applicable
        assert "Seed-VC" in ctl.note.text() and ctl.note.isVisibleTo(window)
    assert c.control("voice", "pitch").applicable
    assert c.control("engine", "input_gain_db").applicable  # every voice
    window.voice.voice.setCurrentIndex(window.voice.voice.findData("passthrough"))
    assert c.control("engine", "crossfade_time").applicable
    assert not c.control("voice", "formant").applicable
    assert "Not used by this voice" in c.control("voice", "formant").spin.toolTip()


def test_seedvc_entry_follows_availability(window):
    combo = window.voice.voice
    i = combo.findData("seedvc")
    ok, why = voice_available("seedvc")
    item = combo.model().item(i)
    # without its weights it can still be picked where a Remote GPU server can compute it
    assert item.isEnabled() == voice_selectable("seedvc")[0]
    assert item.isEnabled() == (ok or importlib.util.find_spec("tritonclient") is not None)
    if not ok:
        assert why in combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert why in window.voice.unavailable.text()
    assert not window.voice.backend.isEnabled()  # built-in voice: no inference backend


def test_every_control_is_keyboard_reachable_and_named(window):
    kinds = (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget)
    widgets = [w for k in kinds for w in window.findChildren(k)]
    interactive = [
        w
        for w in widgets
        if w.isVisibleTo(window)
        and w.window() is window
        and not isinstance(w.parent(), QAbstractSpinBox | QComboBox)
        and w.focusPolicy() != Qt.FocusPolicy.NoFocus
        and type(w).__name__ not in ("QScrollBar", "QToolButton")
    ]
    assert len(interactive) > 40
    unnamed = [
        w
        for w in interactive
        if not w.accessibleName() and not (isinstance(w, QAbstractButton) and w.text())
    ]
    assert not unnamed, [type(w).__name__ for w in unnamed]
    # Tab walks through all of them
    chain, w = set(), window.start_button
    for _ in range(2000):
        chain.add(w)
        w = w.nextInFocusChain()
        if w is window.start_button:
            break
    missing = [
        x.accessibleName() or x.text()
        for x in interactive
        if x not in chain or not x.focusPolicy() & Qt.FocusPolicy.TabFocus
    ]
    assert not missing


def test_graph_follows_the_light_or_dark_palette(window, app):
    from PySide6.QtGui import QColor, QPalette

    base = window.palette().color(QPalette.ColorRole.Base)
    assert window.graph.view.backgroundBrush().color() == base
    original = app.palette()
    dark = QPalette(original)
    for role, colour in (
        (QPalette.ColorRole.Window, "#2b2b2b"),
        (QPalette.ColorRole.Base, "#1e1e1e"),
        (QPalette.ColorRole.Text, "#e6e6e6"),
        (QPalette.ColorRole.WindowText, "#e6e6e6"),
    ):
        dark.setColor(role, QColor(colour))
    try:
        app.setPalette(dark)  # what the platform does when the system switches to dark mode
        app.processEvents()
        assert window.graph.view.backgroundBrush().color() == QColor("#1e1e1e")
        axis = window.graph.plots["compute"].getAxis("left")
        assert axis.textPen().color() == QColor("#e6e6e6")
    finally:
        app.setPalette(original)
        app.processEvents()
    assert window.graph.view.backgroundBrush().color() == base


@pytest.mark.qt_no_exception_capture
def test_unhandled_exception_shows_a_dialog_and_the_app_keeps_working(window, qtbot):
    from voicegui.ui.app import ExceptionDialogs, setup_logging

    log_path = setup_logging()
    hooks = ExceptionDialogs(log_path, window).install()
    try:

        def boom() -> None:
            raise RuntimeError("a bug in a slot")

        QTimer.singleShot(0, boom)
        qtbot.waitUntil(lambda: hooks.count == 1, timeout=2000)
        box = hooks.dialogs[0]
        assert isinstance(box, QMessageBox) and box.isVisible() and not box.isModal()
        assert str(log_path) in box.informativeText()
        assert "a bug in a slot" in box.text()
        for h in __import__("logging").getLogger().handlers:
            h.flush()
        assert "a bug in a slot" in log_path.read_text(encoding="utf-8")
        # still usable
        window.controls.control("voice", "pitch").slider.setValue(2500)
        assert window.controller.settings.voice.pitch == 1.0
        for _ in range(10):  # a storm of errors does not bury the window
            hooks(ValueError, ValueError("again"), None)
        assert len(hooks.dialogs) <= 3
        box.done(0)
    finally:
        hooks.uninstall()
        for b in list(hooks.dialogs):
            b.done(0)


def test_refresh_rescans_devices(window, qtbot):
    window.devices.refresh.click()
    assert window.devices.select("input", "system")
    assert window.controller.meter is not None and window.controller.meter.active
