"""PresetStore on real files in a temporary VOICEGUI_HOME."""

from __future__ import annotations

import json

import pytest

from voicegui import paths
from voicegui.presets import AppState, PresetError, PresetStore
from voicegui.settings import DeviceRef, Settings, with_changes


def test_save_load_rename_delete_export_import(tmp_path):
    store = PresetStore()
    s = with_changes(
        Settings(),
        voice={"pitch": -3.0},
        audio={"input": DeviceRef("ALSA", "USB Mic"), "output": DeviceRef("JACK", "system")},
    )
    store.save("My voice ✨", s)
    assert store.load("My voice ✨").settings == s
    with pytest.raises(PresetError, match="already exists"):
        store.save("My voice ✨", s)
    store.save("My voice ✨", with_changes(s, voice={"pitch": 2.0}), overwrite=True)
    assert store.load("My voice ✨").settings.voice.pitch == 2.0
    store.rename("My voice ✨", "Renamed")
    assert "Renamed" in store.names() and "My voice ✨" not in store.names()
    out = store.export("Renamed", tmp_path / "shared.json")
    store.delete("Renamed")
    assert "Renamed" not in store.names()
    imported = store.import_file(out)
    assert imported.name == "Renamed"
    assert imported.settings.audio.input == DeviceRef("ALSA", "USB Mic")
    again = store.import_file(out)
    assert again.name == "Renamed (2)"  # never overwrites silently


def test_builtin_presets_are_offered_and_protected():
    store = PresetStore()
    names = store.names()
    assert {"Deeper", "Higher", "Low latency"} <= set(names)
    assert store.load("Deeper").settings.voice.pitch < 0
    with pytest.raises(PresetError, match="built-in"):
        store.delete("Deeper")


def test_corrupt_preset_is_kept_aside_and_reported():
    folder = paths.presets_dir()
    (folder / "Broken.json").write_text("{ not json", encoding="utf-8")
    (folder / "Wrong.json").write_text(
        json.dumps({"settings": {"voice": {"pitch": 99}}}), encoding="utf-8"
    )
    store = PresetStore()
    names = store.names()
    assert "Broken" not in names and "Wrong" not in names
    aside = sorted(p.name for p in folder.glob("*.corrupt-*.json"))
    assert len(aside) == 2 and aside[0].startswith("Broken.corrupt-")
    reasons = " ".join(why for _, why in store.report.quarantined)
    assert "not valid JSON" in reasons and "Pitch must be between" in reasons
    with pytest.raises(PresetError, match="kept aside"):
        store.load("Broken")
    # the original content is still there, untouched
    kept = next(folder.glob("Broken.corrupt-*.json")).read_text(encoding="utf-8")
    assert kept == "{ not json"


def test_bad_names_are_refused():
    store = PresetStore()
    for bad in ("", "a/b", "con:1", "x" * 101):
        with pytest.raises(PresetError):
            store.save(bad, Settings())


def test_app_state_round_trip_and_survives_garbage():
    state = AppState()
    state.update(last_preset="Deeper", geometry="abc")
    assert AppState().load()["last_preset"] == "Deeper"
    state.path.write_text("garbage", encoding="utf-8")
    assert AppState().load() == {}
