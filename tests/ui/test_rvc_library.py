"""The RVC voice library in the window: real widgets (offscreen), the kit's real voice files.

Import through the file dialog's code path and through a drop (a QDropEvent carrying file URLs),
the list's columns against what the files say, choosing a voice, its default pitch, removal with
its confirmation, a damaged voice, and the shared-weights box with the window's machinery.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from voicegui.ui.models import human_size
from voicegui.ui.rvc_library import F0, INDEX, NAME, PITCH, RATE, SIZE, VERSION, RvcLibraryPanel
from voicegui.voices.rvc import library
from voicegui.voices.rvc.model_info import read_index_info, read_model_info


@pytest.fixture
def panel(app, qtbot):
    p = RvcLibraryPanel()
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    qtbot.waitExposed(p)
    return p


@pytest.fixture(scope="session")
def kit_voices(rvc_assets) -> dict[str, Path]:  # noqa: F811
    """The kit's voice models by version (v1, v2) and its index."""
    out = {}
    for f in sorted((rvc_assets / "weights").glob("*.pth")):
        out.setdefault(read_model_info(f).version, f)
    (out["index"],) = sorted((rvc_assets / "indices").glob("*.index"))
    if not {"v1", "v2"} <= set(out):
        pytest.skip("the kit lacks a v1 or a v2 voice")
    return out


def drop(widget, files: list[Path]) -> QDropEvent:
    """Drag files over ``widget`` and drop them, as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    pos = widget.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    event = QDropEvent(QPointF(pos), actions, mime, buttons, mods)
    if enter.isAccepted():
        QApplication.sendEvent(widget, event)
    return event if enter.isAccepted() else enter


def wait_import(panel, qtbot) -> None:
    qtbot.waitUntil(lambda: not panel.busy, timeout=60000)


def row(panel, name: str) -> dict[str, str]:
    item = panel.items()[name]
    cols = {"name": NAME, "version": VERSION, "rate": RATE, "f0": F0, "size": SIZE}
    cols |= {"index": INDEX, "pitch": PITCH}
    return {k: item.text(c) for k, c in cols.items()}


def click(panel, name: str) -> None:
    item = panel.items()[name]
    rect = panel.tree.visualItemRect(item)
    QTest.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_import_list_choose_and_remove(panel, qtbot, kit_voices, tmp_path):
    assert panel.tree.topLevelItemCount() == 0 and panel.empty.isVisible()
    assert panel.weights_box.isVisible() and "not installed" in panel.weights_state.text()
    changes: list[dict] = []
    panel.changed.connect(changes.append)

    # the file dialog's path: a model with a non-ASCII name and its index
    v2 = tmp_path / "Sängerin 歌手.pth"
    shutil.copyfile(kit_voices["v2"], v2)
    index = kit_voices["index"]
    assert panel.import_files([v2, index])
    assert panel.busy and not panel.import_button.isEnabled()
    wait_import(panel, qtbot)
    info, ix = read_model_info(v2), read_index_info(index)
    assert row(panel, "Sängerin 歌手") == {
        "name": "Sängerin 歌手",
        "version": f"{info.version} ({info.feature_dim}-d)",
        "rate": f"{info.sample_rate / 1000:g} kHz",
        "f0": "yes" if info.f0 else "no",
        "size": human_size(v2.stat().st_size + index.stat().st_size),
        "index": f"yes ({ix.vectors} vectors)",
        "pitch": "+0 st",
    }
    # the library's first voice is put to use at once, with its index
    stored = library.get("Sängerin 歌手")
    assert changes[-1] == {"model": "Sängerin 歌手", "index": str(stored.index), "pitch": 0.0}
    assert not panel.empty.isVisible()

    # a drop: the v1 voice (no index); an audio file is not the library's
    wav = tmp_path / "take.wav"
    wav.write_bytes(b"RIFF")
    assert not drop(panel, [wav]).isAccepted()
    assert drop(panel, [kit_voices["v1"]]).isAccepted()
    wait_import(panel, qtbot)
    v1 = kit_voices["v1"].stem
    assert row(panel, v1)["version"].startswith(read_model_info(kit_voices["v1"]).version)
    assert row(panel, v1)["index"] == "no" and len(panel.items()) == 2

    # its default pitch, then choosing it by a click: model, no index, that pitch
    click(panel, "Sängerin 歌手")
    panel.select(v1)
    panel.pitch.setValue(-5.0)
    assert library.get(v1).pitch == -5.0 and row(panel, v1)["pitch"] == "-5 st"
    click(panel, v1)
    assert changes[-1] == {"model": v1, "index": "", "pitch": -5.0}
    assert panel.items()[v1].font(NAME).bold()
    assert not panel.items()["Sängerin 歌手"].font(NAME).bold()

    # removal asks first; Cancel keeps the voice, Remove deletes it and unsets it
    panel.remove_button.click()
    box = panel.remove_box
    assert box is not None and box.isVisible() and v1 in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: panel.remove_box is None, timeout=2000)
    assert v1 in library.names()
    panel.remove_button.click()
    panel.remove_yes.click()
    qtbot.waitUntil(lambda: panel.remove_box is None, timeout=2000)
    assert v1 not in library.names() and v1 not in panel.items()
    assert changes[-1] == {"model": "", "index": ""}


def test_an_index_dropped_alone_goes_to_the_selected_voice(panel, qtbot, kit_voices):
    panel.import_files([kit_voices["v2"]])
    wait_import(panel, qtbot)
    name = kit_voices["v2"].stem
    assert row(panel, name)["index"] == "no"
    panel.select(name)
    assert drop(panel.tree.viewport(), [kit_voices["index"]]).isAccepted()
    wait_import(panel, qtbot)
    assert row(panel, name)["index"].startswith("yes") and library.get(name).has_index


def test_damaged_and_refused_files_are_shown_not_fatal(panel, qtbot, kit_voices, tmp_path):
    notices: list[tuple] = []
    panel.notice.connect(lambda *a: notices.append(a))
    bad = tmp_path / "broken.pth"
    bad.write_bytes(kit_voices["v2"].read_bytes()[:100_000])
    panel.import_files([bad])
    wait_import(panel, qtbot)
    assert "broken.pth was not imported" in panel.status.text()
    assert notices and "damaged or truncated" in notices[-1][1]
    assert panel.tree.topLevelItemCount() == 0

    # a damaged voice already in the library (copied by hand) is listed with what is wrong
    folder = library.library_dir() / "by hand"
    folder.mkdir()
    shutil.copyfile(bad, folder / bad.name)
    panel.refresh()
    assert "damaged or truncated" in row(panel, "by hand")["index"]
    assert not panel.use("by hand") and "cannot be used" in panel.status.text()

    # a chosen voice that is not in the library (a preset from another machine) is pointed out
    from voicegui.settings import Settings, with_changes

    panel.set_settings(with_changes(Settings(), voice={"voice": "rvc", "model": "ghost"}))
    assert "'ghost' is not in the library" in panel.status.text()

    # a v1 model with the v2 index: refused with the reason
    panel.import_files([kit_voices["v1"], kit_voices["index"]])
    wait_import(panel, qtbot)
    assert "features but the model is v1" in panel.status.text()


@pytest.mark.slow
def test_the_library_in_the_window(window, qtbot, kit_voices, rvc_assets, monkeypatch):  # noqa: F811
    from voicegui import modelhub
    from voicegui.voices.catalog import voice_selectable

    panel = window.voice.rvc
    combo = window.voice.voice
    item = combo.model().item(combo.findData("rvc"))
    assert item.isEnabled() == voice_selectable("rvc")[0]
    assert not panel.isVisible()
    window.controller.change(voice={"voice": "rvc"})
    assert panel.isVisible()
    # the controls panel offers index rate and protect for RVC, not Seed-VC's diffusion steps
    controls = window.controls
    assert controls.control("voice", "index_rate").slider.isEnabled()
    assert controls.control("voice", "protect").slider.isEnabled()
    assert not controls.control("voice", "diffusion_steps").slider.isEnabled()

    # choosing a voice in the library reaches the settings; so does the pitch estimator
    panel.import_files([kit_voices["v2"], kit_voices["index"]])
    wait_import(panel, qtbot)
    v = window.controller.settings.voice
    assert v.model == kit_voices["v2"].stem and v.index == str(library.get(v.model).index)
    panel.f0.setCurrentIndex(panel.f0.findData("fcpe"))
    assert window.controller.settings.voice.f0_method == "fcpe"

    # the shared weights: the download question names the files and licence; an import runs
    # with the window's machinery and reports into the library's box
    calls = []
    monkeypatch.setattr(modelhub, "download", lambda name, progress=None: calls.append(name))
    panel.download_button.click()
    box = window.download_box
    assert box is not None and "hubert_base.pt" in box.text() and "rmvpe.pt" in box.text()
    assert "MIT" in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: window.download_box is None, timeout=2000)
    assert calls == []
    with qtbot.waitSignal(window.models.finished, timeout=120000) as blocker:
        assert window.import_model(rvc_assets, "rvc")
        assert panel.model_progress.isVisible()
    assert blocker.args[:2] == ["rvc", "ok"], blocker.args
    assert not panel.weights_box.isVisible() and not panel.model_busy
    assert modelhub.installed("rvc")

    # an RVC file dropped anywhere on the window lands in the library
    window.voice.rvc.remove(kit_voices["v2"].stem)
    drop_point = window.graph
    event = drop(drop_point, [kit_voices["v2"]])
    assert event.isAccepted()
    wait_import(panel, qtbot)
    assert kit_voices["v2"].stem in library.names()
