"""The "Send to apps" switch in the window: on Linux (a real headless PipeWire server) it makes the
virtual microphone and says what to pick in Discord/OBS; on Windows and macOS (their device lists)
it plays into a detected virtual cable in one click, or says which to install."""

from __future__ import annotations

from dataclasses import replace

from tests.ui.conftest import close_window, open_window
from voicegui.audio.device_info import DeviceInfo
from voicegui.audio.virtual_mic import DISPLAY_NAME, SOURCE_NAME
from voicegui.settings import AudioSettings, DeviceRef
from voicegui.ui.device_panel import DevicePanel


def test_on_linux_the_switch_makes_the_microphone_and_the_voice_goes_there(
    app, qtbot, pipewire_server
):
    w = open_window(qtbot)
    try:
        panel, c = w.devices, w.controller
        assert panel.select_hostapi("ALSA") and panel.select("input", "pipewire")
        assert not panel.send_to_apps.isChecked() and panel.output.isEnabled()
        panel.send_to_apps.click()
        assert c.settings.audio.virtual_mic
        assert SOURCE_NAME in pipewire_server.names("sources")
        assert f'"{DISPLAY_NAME}"' in panel.send_status.text() and panel.send_status.isVisible()
        assert not panel.output.isEnabled()  # the voice goes to the microphone, not the output
        w.start_button.click()
        assert c.running, w.banners.texts()
        qtbot.waitUntil(lambda: c.engine.snapshot().blocks > 5, timeout=5000)
        state = c.engine.refresh()["virtual_mic"]
        measured = state["measured"]
        part = max(0.0, measured["measured_ms"] - measured["player_reported_ms"])
        qtbot.waitUntil(
            lambda: f"virtual mic {part:.1f} ms" in w.graph.latency_bar.toolTip(), timeout=3000
        )
        # off while running: the voice goes back to the output, and the device goes away
        panel.send_to_apps.click()
        assert c.running and not c.settings.audio.virtual_mic
        assert SOURCE_NAME not in pipewire_server.names("sources")
        assert panel.output.isEnabled() and not panel.send_status.isVisible()
        # on again, then the app quits: it goes with the app
        panel.send_to_apps.click()
        assert SOURCE_NAME in pipewire_server.names("sources")
    finally:
        w.close()  # saves the app's settings, as quitting does
    assert SOURCE_NAME not in pipewire_server.names("sources")
    # the next start remembers the switch and makes the microphone again, before any Start
    w = open_window(qtbot)
    try:
        assert w.controller.settings.audio.virtual_mic and w.devices.send_to_apps.isChecked()
        qtbot.waitUntil(lambda: DISPLAY_NAME in w.devices.send_status.text(), timeout=10000)
        assert SOURCE_NAME in pipewire_server.names("sources")
    finally:
        close_window(w)
    assert SOURCE_NAME not in pipewire_server.names("sources")


def test_on_linux_without_a_sound_server_the_switch_stays_off_and_says_what_is_missing(
    app, qtbot, monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no PipeWire or PulseAudio socket here
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    w = open_window(qtbot)
    try:
        panel = w.devices
        panel.send_to_apps.click()
        assert not w.controller.settings.audio.virtual_mic
        assert not panel.send_to_apps.isChecked()
        text = panel.send_status.text()
        assert "PipeWire" in text and "PulseAudio" in text and "neither is running" in text
    finally:
        close_window(w)


WASAPI = "Windows WASAPI"


def _dev(name: str, hostapi: str, outputs: int = 2, inputs: int = 0) -> DeviceInfo:
    return DeviceInfo(0, name, hostapi, inputs, outputs, 48000.0, 0.01, 0.01, 0.1, 0.1)


def _panel(qtbot, devices: list[DeviceInfo], platform: str, output: str) -> DevicePanel:
    apis = sorted({d.hostapi for d in devices})
    panel = DevicePanel(lister=lambda _rescan: (apis, devices, apis[0]), platform=platform)
    qtbot.addWidget(panel)
    panel.set_audio(AudioSettings(output=DeviceRef(apis[0], output)))
    return panel


def test_on_windows_the_switch_plays_into_the_detected_cable_in_one_click(qtbot):
    speakers = "Speakers (Realtek(R) Audio)"
    devices = [
        _dev(speakers, WASAPI),
        _dev("CABLE Output (VB-Audio Virtual Cable)", WASAPI, 0, 2),
        _dev("CABLE Input (VB-Audio Virtual Cable)", WASAPI),
    ]
    panel = _panel(qtbot, devices, "win32", speakers)
    changes: list[dict] = []
    panel.changed.connect(changes.append)
    panel.send_to_apps.click()
    cable = DeviceRef(WASAPI, "CABLE Input (VB-Audio Virtual Cable)")
    assert changes == [{"output": cable}]
    panel.set_audio(replace(panel._audio, output=cable))  # the controller's answer
    assert panel.send_to_apps.isChecked()
    assert '"CABLE Output"' in panel.send_status.text()
    assert panel.output.currentData() == cable
    panel.send_to_apps.click()  # off: back to what played before
    assert changes[-1] == {"output": DeviceRef(WASAPI, speakers)}


def test_choosing_the_cable_by_hand_turns_the_switch_on_and_tells_what_to_pick(qtbot):
    devices = [_dev("BlackHole 2ch", "Core Audio", 2, 2), _dev("MacBook Speakers", "Core Audio")]
    panel = _panel(qtbot, devices, "darwin", "BlackHole 2ch")
    assert panel.send_to_apps.isChecked()
    assert '"BlackHole 2ch" as the microphone' in panel.send_status.text()


def test_without_a_cable_the_switch_stays_off_and_says_which_to_install(qtbot):
    panel = _panel(qtbot, [_dev("Speakers (Realtek(R) Audio)", WASAPI)], "win32", "")
    changes: list[dict] = []
    panel.changed.connect(changes.append)
    panel.send_to_apps.click()
    assert changes == [] and not panel.send_to_apps.isChecked()
    assert "VB-CABLE" in panel.send_status.text() and panel.send_status.isVisibleTo(panel)
    mac = _panel(qtbot, [_dev("MacBook Speakers", "Core Audio")], "darwin", "")
    mac.send_to_apps.click()
    assert not mac.send_to_apps.isChecked() and "BlackHole" in mac.send_status.text()


def test_a_fresh_windows_install_starts_on_wasapi_not_portaudios_default_mme(qtbot):
    devices = [_dev("Microphone (USB)", "MME", 0, 2), _dev("Speakers", "MME"),
               _dev("Microphone (USB)", WASAPI, 0, 2), _dev("Speakers", WASAPI)]  # fmt: skip
    # the system default input is on MME (PortAudio's default on Windows); nothing chosen yet
    panel = DevicePanel(lister=lambda _rescan: (["MME", WASAPI], devices, "MME"), platform="win32")
    qtbot.addWidget(panel)
    panel.set_audio(AudioSettings())
    panel.rescan()
    assert panel.hostapi.currentText() == WASAPI
    # a host API the user chose stays chosen
    panel.set_audio(AudioSettings(input=DeviceRef("MME", "Microphone (USB)")))
    assert panel.hostapi.currentText() == "MME"
    # negative control: without WASAPI devices the system default's host API is used
    mme_only = [d for d in devices if d.hostapi == "MME"]
    other = DevicePanel(lister=lambda _rescan: (["MME", WASAPI], mme_only, "MME"), platform="win32")
    qtbot.addWidget(other)
    other.set_audio(AudioSettings())
    other.rescan()
    assert other.hostapi.currentText() == "MME"


def test_the_panel_warns_when_the_input_records_the_cable_the_voice_plays_into(qtbot):
    cable_in, cable_out = (
        "CABLE Input (VB-Audio Virtual Cable)",
        "CABLE Output (VB-Audio Virtual Cable)",
    )
    devices = [
        _dev("Microphone (Realtek(R) Audio)", WASAPI, 0, 2),
        _dev(cable_out, WASAPI, 0, 2),
        _dev(cable_in, WASAPI),
    ]
    panel = _panel(qtbot, devices, "win32", cable_in)
    assert not panel.input_note.isVisibleTo(panel)
    changes: list[dict] = []
    panel.changed.connect(changes.append)
    assert panel.select("input", cable_out)
    assert changes == [{"input": DeviceRef(WASAPI, cable_out)}]
    panel.set_audio(replace(panel._audio, input=DeviceRef(WASAPI, cable_out)))  # the answer
    assert panel.input_note.isVisibleTo(panel) and "feed back" in panel.input_note.text()
    # the microphone chosen again: the warning goes
    panel.set_audio(replace(panel._audio, input=DeviceRef(WASAPI, "Microphone (Realtek(R) Audio)")))
    assert not panel.input_note.isVisibleTo(panel)
