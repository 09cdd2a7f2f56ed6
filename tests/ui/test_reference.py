"""Reference clips: drag and drop (non-ASCII name), bad files, recording, and the input meter."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import pick_jack, start
from voicegui import paths
from voicegui.audio.meter import InputMeter, levels
from voicegui.audio.recorder import Player, Recorder
from voicegui.engine.offline import read_audio
from voicegui.settings import DeviceRef

pytestmark = pytest.mark.jack
JACK_SYSTEM = DeviceRef("JACK Audio Connection Kit", "system")


def drop(window, path) -> bool:
    """A real drag-enter + drop of a file URL on the window, as a file manager sends it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    ev = QDropEvent(
        QPointF(pos),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, ev)
    return ev.isAccepted()


def test_drop_reference_with_non_ascii_name(window, qtbot, speech_file):
    assert not speech_file.name.isascii()
    assert drop(window, speech_file)
    s = window.controller.settings
    assert s.voice.reference == str(speech_file)
    data, sr = window.controller.reference
    assert sr == 22050 and len(data) > sr  # real audio, read through soundfile
    assert speech_file.name in window.voice.ref_status.text()
    assert "22050 Hz" in window.voice.ref_status.text()
    assert window.voice.reference.text() == str(speech_file)
    # and it survives a preset round trip
    assert window.presets.save_as("with reference") is not None
    assert window.presets.store.load("with reference").settings.voice.reference == str(speech_file)


def test_drop_text_is_ignored(window, qtbot):
    mime = QMimeData()
    mime.setText("hello")
    enter = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


@pytest.mark.parametrize("kind", ["empty", "nan", "unreadable", "silent", "missing"])
def test_bad_reference_files_give_a_clear_message(window, qtbot, tmp_path, speech_file, kind):
    assert window.use_reference(speech_file)  # a good one first: it must stay in place
    path = tmp_path / f"bad-{kind}-ñ.wav"
    if kind == "empty":
        sf.write(str(path), np.zeros(0, np.float32), 16000)
        expected = "is empty"
    elif kind == "nan":
        x = np.zeros(16000, np.float32)
        x[100:110] = np.nan
        sf.write(str(path), x, 16000, subtype="FLOAT")
        expected = "NaN"
    elif kind == "unreadable":
        path.write_bytes(b"this is not audio at all" * 10)
        expected = "cannot read"
    elif kind == "silent":
        sf.write(str(path), np.zeros(16000, np.float32), 16000)
        expected = "silent"
    else:
        expected = "not found"
    assert drop(window, path)  # the window accepts the drop, then explains the problem
    assert expected in window.voice.ref_status.text()
    assert path.name in window.voice.ref_status.text() or kind == "missing"
    assert any(expected in t for t in window.banners.texts())
    assert window.controller.settings.voice.reference == str(speech_file)


def test_dropped_json_is_imported_as_a_preset(window, qtbot, tmp_path):
    src = window.presets.store.export("Child", tmp_path / "shared preset.json")
    assert drop(window, src)
    assert (
        "shared preset" in window.presets.store.names() or "Child" in window.presets.store.names()
    )
    assert window.presets.selected() in ("Child", "Child (2)")


def test_recorder_saves_a_readable_wav(jack_server):
    rec = Recorder(JACK_SYSTEM, seconds=0.6, sample_rate=48000).start()
    import time

    deadline = time.monotonic() + 5
    while not rec.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.finished and rec.progress == 1.0
    rec.stop()
    path = rec.save()
    assert path.parent == paths.data_dir() / "references"
    data, sr = read_audio(path)
    assert sr == 48000 and data.shape[0] == round(0.6 * 48000)
    assert rec.silent  # the dummy driver captures silence
    player = Player(rec.audio, rec.sample_rate, JACK_SYSTEM).start()
    deadline = time.monotonic() + 5
    while not player.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    player.stop()
    assert player.finished


def test_record_dialog_countdown_record_and_playback(window, qtbot):
    from voicegui.ui.record_dialog import RecordDialog

    pick_jack(window, qtbot)
    window.record_reference()
    dialog = window.record_dialog
    assert window.controller.meter is None  # the microphone is free for the recording
    dialog.seconds.setValue(2.0)
    dialog.countdown = 1
    dialog.record.click()
    assert "starts in 1" in dialog.state.text()
    qtbot.waitUntil(lambda: "Recording" in dialog.state.text(), timeout=3000)
    qtbot.waitUntil(lambda: dialog.path is not None, timeout=6000)
    assert dialog.path.is_file() and dialog.path.parent.name == "references"
    assert "silent" in dialog.state.text()  # JACK's dummy driver records zeros: say so
    assert not dialog.use.isEnabled()
    dialog.play.click()
    assert "Playing" in dialog.state.text()
    qtbot.waitUntil(lambda: dialog.play.isEnabled(), timeout=6000)
    dialog.reject()
    qtbot.waitUntil(lambda: window.controller.meter is not None, timeout=2000)
    assert isinstance(dialog, RecordDialog)


def test_record_button_is_disabled_while_running(window, qtbot):
    pick_jack(window, qtbot)
    start(window, qtbot)
    assert not window.voice.record.isEnabled()
    assert "Stop the voice changer" in window.voice.record.toolTip()


def test_input_meter_runs_before_start_and_yields_to_the_engine(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    meter = c.meter
    assert meter is not None and meter.active
    qtbot.waitUntil(lambda: meter.callbacks > 3, timeout=3000)
    assert meter.device.name == "system"
    start(window, qtbot)
    assert c.meter is None and not meter.active
    window.start_button.click()
    assert c.meter is not None and c.meter.active and c.meter is not meter


def test_input_meter_measures_levels(jack_server):
    m = InputMeter(JACK_SYSTEM, 48000)
    # a known block: -6 dBFS peak, RMS of a full-scale/2 square wave
    block = np.full(256, 0.5, np.float32)
    block[::2] = -0.5
    rms, peak = levels(block)
    assert rms == pytest.approx(-6.02, abs=0.01) and peak == pytest.approx(-6.02, abs=0.01)
    assert levels(block * 0.1)[0] == pytest.approx(-26.02, abs=0.01)  # 20 dB less is seen
    with m:
        assert m.active
        import time

        t0 = time.monotonic()
        while m.callbacks < 3 and time.monotonic() - t0 < 3:
            time.sleep(0.01)
        assert m.callbacks >= 3 and not m.stale()
    assert not m.active
