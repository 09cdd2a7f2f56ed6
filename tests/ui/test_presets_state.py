"""Presets through the panel, corrupt and foreign presets, and what comes back on the next start."""

from __future__ import annotations

import json

import pytest

from tests.conftest import JACK
from tests.ui.conftest import pick_jack, start
from voicegui import paths
from voicegui.presets import AppState, preset_to_json
from voicegui.settings import DeviceRef, Settings, with_changes

pytestmark = pytest.mark.jack


def slide(window, part, name, index):
    window.controls.control(part, name).slider.setValue(index)
    return getattr(getattr(window.controller.settings, part), name)


def test_preset_round_trip(window, qtbot, tmp_path):
    pick_jack(window, qtbot)
    panel = window.presets
    pitch = slide(window, "voice", "pitch", 3000)  # +6 st
    gate = slide(window, "engine", "gate_threshold_db", 30)  # -60 dB
    assert (pitch, gate) == (6.0, -60.0)
    name = "Mon preset ✓ 声"
    assert panel.save_as(name) is not None
    assert (paths.presets_dir() / f"{name}.json").is_file()
    assert panel.selected() == name
    assert panel.save_as(name) is None  # never overwritten by "save as"
    assert any("already exists" in t for t in window.banners.texts())

    slide(window, "voice", "pitch", 2400)
    assert window.controller.settings.voice.pitch == 0.0
    panel.load(name)
    s = window.controller.settings
    assert (s.voice.pitch, s.engine.gate_threshold_db) == (6.0, -60.0)
    assert window.controls.control("voice", "pitch").spin.value() == 6.0  # widgets follow
    assert s.audio.input == DeviceRef(JACK, "system")

    slide(window, "voice", "pitch", 2600)  # +2 st
    assert panel.overwrite(name) is not None
    panel.load("Giant")  # a shipped preset
    assert window.controller.settings.voice.pitch == -9.0
    panel.load(name)
    assert window.controller.settings.voice.pitch == 2.0

    assert panel.rename(name, "Renamed") is not None
    assert "Renamed" in panel.store.names() and name not in panel.store.names()
    assert panel.current == "Renamed"
    out = panel.export("Renamed", tmp_path / "exported.json")
    assert json.loads(out.read_text(encoding="utf-8"))["settings"]["voice"]["pitch"] == 2.0
    assert panel.delete("Renamed")
    assert "Renamed" not in panel.store.names()
    assert not panel.delete("Giant")  # built-ins are read-only
    imported = panel.import_file(out)
    assert imported is not None and imported.name == "Renamed"
    assert panel.load("Renamed").settings.voice.pitch == 2.0


def test_corrupt_preset_is_kept_aside_and_reported(window, qtbot):
    folder = paths.presets_dir()
    bad = folder / "Broken.json"
    bad.write_text("{ this is not json", encoding="utf-8")
    window.presets.refresh()
    assert not bad.exists()
    aside = list(folder.glob("Broken.corrupt-*.json"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8") == "{ this is not json"
    texts = window.banners.texts()
    assert any("Broken.json" in t and aside[0].name in t for t in texts), texts
    # reported once, not on every refresh
    n = len(window.banners.history)
    window.presets.refresh()
    assert len(window.banners.history) == n
    # a new preset of that name does not touch the kept file
    assert window.presets.save_as("Broken") is not None
    assert aside[0].read_text(encoding="utf-8") == "{ this is not json"


def test_preset_with_missing_device_loads_the_rest(window, qtbot):
    pick_jack(window, qtbot)
    foreign = with_changes(
        Settings(),
        audio={
            "input": DeviceRef("ASIO", "Focusrite USB ASIO"),
            "output": DeviceRef(JACK, "system"),
        },
        voice={"pitch": 7.0, "formant": 3.0},
        engine={"output_gain_db": -6.0},
    )
    path = paths.presets_dir() / "From another PC.json"
    path.write_text(preset_to_json("From another PC", foreign), encoding="utf-8")
    window.presets.refresh()
    window.presets.load("From another PC")
    s = window.controller.settings
    assert (s.voice.pitch, s.voice.formant, s.engine.output_gain_db) == (7.0, 3.0, -6.0)
    assert s.audio.input == DeviceRef(JACK, "system")  # kept the working one
    texts = window.banners.texts()
    assert any("Focusrite USB ASIO" in t and "missing" in t for t in texts), texts
    start(window, qtbot)  # and it runs


def test_settings_preset_and_geometry_come_back(app, qtbot, jack_server):
    from voicegui.ui.app import create_window

    w = create_window()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    pick_jack(w, qtbot)
    w.presets.load("Deeper")
    slide(w, "engine", "input_gain_db", 60)  # +6 dB
    w.resize(1234, 777)
    qtbot.wait(50)
    w.close()
    state = AppState().load()
    assert state["last_preset"] == "Deeper"
    assert state["settings"]["engine"]["input_gain_db"] == 6.0

    w2 = create_window()
    qtbot.addWidget(w2)
    w2.show()
    qtbot.waitExposed(w2)
    s = w2.controller.settings
    assert s.engine.input_gain_db == 6.0 and s.voice.pitch == -4.0
    assert s.audio.input == DeviceRef(JACK, "system")
    assert w2.presets.selected() == "Deeper" and w2.presets.current == "Deeper"
    assert (w2.width(), w2.height()) == (1234, 777)
    assert w2.devices.input.currentData() == DeviceRef(JACK, "system")
    w2.close()


def test_saved_settings_naming_a_missing_device_open_with_the_default(app, qtbot, jack_server):
    from voicegui.ui.app import create_window

    s = with_changes(Settings(), audio={"input": DeviceRef(JACK, "gone mic")}, voice={"pitch": 3.0})
    AppState().save({"settings": s.to_dict(), "last_preset": "", "geometry": "garbage"})
    w = create_window()
    qtbot.addWidget(w)
    w.show()
    assert w.controller.settings.voice.pitch == 3.0
    assert w.controller.settings.audio.input == DeviceRef(JACK, "")
    assert any("gone mic" in t for t in w.banners.texts())
    w.close()


def test_unreadable_state_file_starts_with_defaults(app, qtbot, jack_server):
    from voicegui.ui.app import create_window

    AppState().path.parent.mkdir(parents=True, exist_ok=True)
    AppState().path.write_text("\x00\x01 not json", encoding="utf-8")
    w = create_window()
    qtbot.addWidget(w)
    w.show()
    assert w.controller.settings.voice.pitch == 0.0
    w.close()


def test_reference_comes_back_and_a_vanished_one_is_reported(
    app, qtbot, jack_server, speech_file, tmp_path
):
    from voicegui.ui.app import create_window

    s = with_changes(Settings(), voice={"reference": str(speech_file)})
    AppState().save({"settings": s.to_dict()})
    w = create_window()
    qtbot.addWidget(w)
    assert w.controller.reference is not None
    assert speech_file.name in w.voice.ref_status.text()
    w.close()

    gone = tmp_path / "deleted clip é.wav"
    s = with_changes(Settings(), voice={"reference": str(gone)})
    AppState().save({"settings": s.to_dict()})
    w = create_window()
    qtbot.addWidget(w)
    assert w.controller.settings.voice.reference == ""
    qtbot.waitUntil(lambda: any(gone.name in t for t in w.banners.texts()), timeout=2000)
    w.close()
