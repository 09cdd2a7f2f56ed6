"""The window drives the real engine on the real JACK server: devices, sliders, restarts, bypass."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.conftest import JACK
from tests.ui.conftest import pick_jack, start
from voicegui.settings import DeviceRef
from voicegui.ui.controller import RESTARTED

pytestmark = pytest.mark.jack


def live_value(engine, part: str, name: str):
    """What the block thread in the audio host applies now."""
    return getattr(getattr(engine.live_settings(), part), name)


def target_index(control) -> int:
    """A slider position away from the current one (and from the ends)."""
    cur = control.slider.value()
    n = control.steps
    for frac in (0.37, 0.61, 0.2):
        i = round(frac * n)
        if i != cur:
            return i
    return (cur + 1) % (n + 1)


def move_and_check(window, qtbot, control) -> None:
    c = window.controller
    eng = c.engine
    opens = eng.stream_opens
    restarts = c.restarts
    control.slider.setValue(target_index(control))  # what dragging the handle ends with
    value = control.value()
    assert getattr(getattr(c.settings, control.part), control.name) == value
    qtbot.waitUntil(lambda: live_value(eng, control.part, control.name) == value, timeout=3000)
    # applied between blocks, without touching the streams
    assert c.engine is eng and eng.running
    assert eng.stream_opens == opens
    assert c.restarts == restarts


def test_pick_devices_start_stop(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    assert not window.devices.exclusive.isEnabled()  # WASAPI only
    start(window, qtbot)
    assert window.start_button.text() == "Stop"
    assert c.meter is None  # the engine owns the microphone while running
    eng = c.engine
    dev = eng.refresh()["input"]
    assert dev.hostapi == JACK and dev.name == "system"
    # the ~30 Hz poll feeds the graph and readouts
    qtbot.waitUntil(lambda: window.graph.frames > 3, timeout=3000)
    assert "ms" in window.readouts.values["latency"].text()
    assert window.readouts.values["provider"].text().startswith("CPU")
    # what the OS granted the block thread is shown (yes here as root; no with the reason)
    assert window.readouts.values["priority"].text().startswith("real-time: ")
    window.start_button.click()
    assert not c.running and not eng.running
    assert window.start_button.text() == "Start"
    assert c.meter is not None and c.meter.active  # the level meter is back


def test_every_live_slider_applies_without_restart(window, qtbot):
    pick_jack(window, qtbot)
    controls = window.controls
    start(window, qtbot)
    live = [c for c in controls.controls.values() if not c.spec.restart]
    assert len(live) >= 12
    done = set()
    # built-in voice: everything it uses, plus the neural-only ones (Seed-VC's, RVC's: disabled,
    # but they still hold a value that goes to the engine live)
    for ctl in live:
        if ctl.spec.voices and "dsp" not in ctl.spec.voices:
            assert not ctl.applicable
            assert "Not used by this voice" in ctl.slider.toolTip()
        move_and_check(window, qtbot, ctl)
        done.add(ctl.name)
    # the windowed controls need a windowed voice: switch to passthrough (restarts the streams)
    window.voice.voice.setCurrentIndex(window.voice.voice.findData("passthrough"))
    assert window.controller.settings.voice.voice == "passthrough"
    qtbot.waitUntil(
        lambda: window.controller.engine.snapshot().voice == "passthrough", timeout=3000
    )
    for name in ("crossfade_time", "extra_left_time", "extra_right_time"):
        ctl = controls.control("engine", name)
        assert ctl.applicable
        move_and_check(window, qtbot, ctl)
        done.add(name)
    assert not controls.control("voice", "pitch").applicable
    assert {c.name for c in live} <= done
    # the spin box is a second way in (typing a value): also live
    eng = window.controller.engine
    spin = controls.control("engine", "output_gain_db").spin
    spin.setValue(-3.5)
    qtbot.waitUntil(lambda: live_value(eng, "engine", "output_gain_db") == -3.5, timeout=3000)
    assert window.controller.engine is eng


def test_block_size_and_rate_restart_the_streams(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    start(window, qtbot)
    eng = c.engine
    opens = eng.stream_opens
    block = window.controls.control("engine", "block_time")
    assert block.spec.restart and "restarts the audio streams" in block.slider.toolTip()
    block.spin.setValue(40.0)  # ms
    assert c.settings.engine.block_time == pytest.approx(0.04)
    assert c.restarts == 1
    assert RESTARTED in window.statusBar().currentMessage()
    assert eng.running and eng.stream_opens == opens + 1
    assert eng.refresh()["block_dev"] == round(0.04 * eng.sample_rate)
    qtbot.waitUntil(lambda: eng.snapshot().blocks > 3, timeout=3000)

    opens = eng.stream_opens
    rate = window.devices.rate
    rate.setCurrentIndex(rate.findData(44100))
    assert c.settings.audio.sample_rate == 44100
    assert c.restarts == 2
    assert eng.stream_opens == opens + 1
    # JACK runs at 48 kHz: the engine falls back and says so in a banner
    assert eng.sample_rate == 48000
    qtbot.waitUntil(lambda: any("44100" in t for t in window.banners.texts()), timeout=3000)

    margin = window.controls.control("engine", "buffer_margin_time")
    margin.slider.setValue(4)
    assert c.restarts == 3
    qtbot.waitUntil(lambda: eng.running and eng.snapshot().blocks > 3, timeout=3000)


def test_bypass_and_shortcuts(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    window.activateWindow()
    window.graph.setFocus()
    qtbot.keyClick(window.graph, Qt.Key.Key_Space)  # Space = start
    qtbot.waitUntil(lambda: c.running, timeout=3000)
    eng = c.engine
    opens = eng.stream_opens
    assert "(B)" in window.bypass_button.toolTip() and "(Space)" in window.start_button.toolTip()
    qtbot.keyClick(window.graph, Qt.Key.Key_B)
    assert c.settings.engine.bypass and window.bypass_button.isChecked()
    qtbot.waitUntil(lambda: live_value(eng, "engine", "bypass"), timeout=3000)
    assert "BYPASS" in window.state_label.text()
    window.bypass_button.click()  # the button does the same
    qtbot.waitUntil(lambda: not live_value(eng, "engine", "bypass"), timeout=3000)
    assert eng.stream_opens == opens
    # Space on a focused button presses that button instead of stopping the engine
    window.bypass_button.setFocus()
    qtbot.keyClick(window.bypass_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: c.settings.engine.bypass, timeout=2000)
    assert c.running
    window.graph.setFocus()
    qtbot.keyClick(window.graph, Qt.Key.Key_Space)  # Space = stop
    assert not c.running


def test_device_loss_stops_cleanly_and_offers_restart(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    start(window, qtbot)
    eng = c.engine
    eng.host.call("debug_abort_streams")  # the device goes away under the engine
    qtbot.waitUntil(lambda: not c.running, timeout=3000)
    assert not eng.running and not eng.refresh()["running"]
    texts = window.banners.texts()
    assert any("the audio device stopped or disappeared" in t for t in texts), texts
    banner = next(b for b in window.banners.banners() if b.key == "engine")
    assert banner.action.isVisibleTo(banner) and banner.action.text() == "Restart"
    assert "disappeared" in window.readouts.values["state"].text()
    banner.action.click()
    assert c.running
    qtbot.waitUntil(lambda: c.engine.snapshot().blocks > 3, timeout=3000)


def test_engine_events_from_the_audio_thread_become_banners(window, qtbot):
    pick_jack(window, qtbot)
    start(window, qtbot)
    eng = window.controller.engine
    # sent from a thread of the audio host, through the pipe, to a banner on the GUI thread
    eng.host.call("debug_event", "warning", "voice is warming up")
    qtbot.waitUntil(lambda: "voice is warming up" in window.banners.texts(), timeout=2000)
    assert window.controller.running  # a warning does not stop anything


def test_start_failure_is_a_banner_not_a_crash(window, qtbot):
    c = window.controller
    c.change(audio={"input": DeviceRef(JACK, "no such microphone")})
    window.start_button.click()
    assert not c.running
    assert not window.start_button.isChecked()
    assert any("no such microphone" in t for t in window.banners.texts())
