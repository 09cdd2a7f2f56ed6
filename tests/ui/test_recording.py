"""Recording the voice from the window on the real JACK server: the file's length and content, the
dry input alongside, and what a full disk, a file-size limit or an unwritable folder do (a clear
message, a valid partial file, and audio that never stops)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from tests.ui.conftest import close_window, open_window, pick_jack, start

pytestmark = pytest.mark.jack

ROOT = Path(__file__).resolve().parents[2]
RATE = 48000
BLOCK_TIME = 0.02
BLOCK = round(BLOCK_TIME * RATE)
TONE_HZ = 440.0  # a whole number of cycles in one second: the looped test signal has no seam
TONE_AMP = 0.3


def tone(seconds: float = 1.0) -> np.ndarray:
    """A sine with a little noise on it (so that two copies line up at one lag only)."""
    t = np.arange(round(seconds * RATE)) / RATE
    noise = np.random.default_rng(1).uniform(-0.03, 0.03, len(t))
    return (TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t) + noise).astype(np.float32)


def dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec)) * RATE / len(x)


def assert_tone_throughout(x: np.ndarray) -> None:
    """The recorded sine is there from start to end: every 10 ms holds it at full level (a gap or
    a dropped block would show as a quiet stretch)."""
    assert abs(dominant_hz(x) - TONE_HZ) <= 1.0
    n = RATE // 100
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    expected = TONE_AMP / np.sqrt(2)
    assert rms.min() > 0.8 * expected and rms.max() < 1.2 * expected, (rms.min(), rms.max())


def run_tone(window, qtbot) -> None:
    """Passthrough voice on JACK, fed a sine instead of the microphone."""
    pick_jack(window, qtbot)
    c = window.controller
    c.change(voice={"voice": "passthrough"}, engine={"block_time": BLOCK_TIME})
    start(window, qtbot)
    c.engine.test_signal(tone())
    qtbot.wait(300)  # the pipeline holds only the sine from here on


def blocks(window) -> int:
    return window.controller.engine.snapshot().blocks


def assert_audio_goes_on(window, qtbot, seconds: float = 1.0) -> None:
    c = window.controller
    before, dropped = c.engine.snapshot().blocks, c.engine.snapshot().dropped_blocks
    qtbot.wait(round(seconds * 1000))
    snap = c.engine.snapshot()
    assert c.running and snap.running
    assert snap.blocks - before >= 0.7 * seconds / BLOCK_TIME, (before, snap.blocks)
    assert snap.dropped_blocks == dropped


def test_ten_seconds_from_the_window_have_the_right_length_and_content(
    window, qtbot, voicegui_home
):
    c = window.controller
    assert not window.record_button.isEnabled()  # nothing to record while stopped
    run_tone(window, qtbot)
    assert window.record_button.isEnabled()
    window.record_dry_action.setChecked(True)
    window.presets.current = "Été à Paris"
    b0 = blocks(window)
    t0 = time.monotonic()
    window.record_button.click()
    assert c.recording and window.record_button.isChecked(), window.banners.texts()
    path = Path(c.recording_path)
    assert path.parent == voicegui_home / "recordings"
    assert path.name.startswith("voicegui-") and path.name.endswith("-Été à Paris.wav")
    qtbot.wait(5000)
    label = window.record_label.text()
    assert "REC 0:0" in label and "kB" in label, label  # elapsed time and size as it runs
    qtbot.wait(5000)
    window.record_button.click()
    elapsed = time.monotonic() - t0
    b1 = blocks(window)
    assert not c.recording and not window.record_button.isChecked()
    summary = c.last_recording
    assert summary["error"] == "" and summary["dropped"] == 0
    assert summary["frames"] == summary["fed"]  # every block handed over reached the file
    assert "Saved" in window.record_label.text() and path.name in window.record_label.text()

    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == RATE and audio.ndim == 1
    assert len(audio) == summary["frames"] and len(audio) % BLOCK == 0  # whole blocks
    # as many blocks as the engine ran meanwhile (the snapshot is published ~30 times a second,
    # so either end may lag by up to two blocks)
    assert abs(len(audio) // BLOCK - (b1 - b0)) <= 3, (len(audio) // BLOCK, b1 - b0)
    # how long the user waited is the event loop's business (a loaded machine oversleeps):
    # reported, not asserted; the file holds what the engine ran meanwhile (above)
    print(f"\nrecorded {len(audio) / RATE:.2f} s in {elapsed:.2f} s between the clicks")
    assert_tone_throughout(audio)

    dry, rate = sf.read(summary["dry_path"], dtype="float32")
    assert Path(summary["dry_path"]).name == path.stem + "-dry.wav"
    assert rate == RATE and len(dry) == len(audio)
    assert_tone_throughout(dry[RATE // 10 :])
    # the dry file is delayed as much as the voice lags its input: they line up sample for sample
    # (passthrough: the same signal, but for 16-bit rounding)
    lag = np.argmax([np.dot(audio[RATE : 2 * RATE], dry[RATE + k : 2 * RATE + k])
                     for k in range(-150, 151)]) - 150  # fmt: skip
    assert lag == 0
    assert np.max(np.abs(audio[RATE:] - dry[RATE:])) < 1e-3
    assert_audio_goes_on(window, qtbot, 0.5)

    # R starts recording (as the button does); stopping the voice changer ends a recording too
    qtbot.keyClick(window.graph, Qt.Key.Key_R)
    assert c.recording and window.record_button.isChecked()
    qtbot.wait(500)
    window.start_button.click()
    assert not c.running and not c.recording
    assert not window.record_button.isEnabled() and not window.record_button.isChecked()
    assert sf.info(c.last_recording["path"]).frames > 0.3 * RATE


@pytest.fixture
def limited_window(app, qtbot, jack_server):
    from tests.ui import record_host
    from voicegui.engine.client import AudioHost

    w = open_window(qtbot, host=AudioHost(service=record_host.SERVICE))
    yield w
    close_window(w)


def check_stopped_by_itself(window, qtbot, path: Path, reason: str) -> np.ndarray:
    c = window.controller
    qtbot.waitUntil(lambda: any("Recording stopped" in t for t in window.banners.texts()),
                    timeout=15000)  # fmt: skip
    text = next(t for t in window.banners.texts() if "Recording stopped" in t)
    assert reason in text and path.name in text and "keeps running" in text, text
    qtbot.waitUntil(lambda: not c.recording, timeout=3000)
    assert not window.record_button.isChecked()
    assert_audio_goes_on(window, qtbot)
    audio, rate = sf.read(str(path), dtype="float32")  # a valid file: what reached the disk
    assert rate == RATE and len(audio) > 0.5 * RATE
    assert_tone_throughout(audio)
    return audio


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_file_size_limit_stops_the_recording_keeps_a_valid_file_and_the_audio(
    limited_window, qtbot, fmt
):
    window = limited_window
    c = window.controller
    run_tone(window, qtbot)
    # about 1.5 s of 16-bit mono at 48 kHz (a FLAC of this noisy sine: about 1.5 s too)
    limit = 150_000 if fmt == "wav" else 100_000
    c.host.call("debug_limit_file_size", limit)
    window.record_flac_action.setChecked(fmt == "flac")
    window.record_button.click()
    assert c.recording, window.banners.texts()
    path = Path(c.recording_path)
    assert path.suffix == "." + fmt
    audio = check_stopped_by_itself(
        window, qtbot, path, "the file reached the largest size this system allows"
    )
    assert path.stat().st_size <= limit
    if fmt == "wav":
        assert len(audio) * 2 > limit - 4 * BLOCK * 2 - 1000  # it filled what the limit allowed
    assert c.host.record_state()["error"]


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_the_recording_keeps_a_valid_file_and_the_audio(
    window, qtbot, voicegui_home
):
    c = window.controller
    with tmpfs(voicegui_home / "recordings", "size=256k"):
        run_tone(window, qtbot)
        window.record_button.click()
        assert c.recording, window.banners.texts()
        path = Path(c.recording_path)
        assert path.parent == voicegui_home / "recordings"
        check_stopped_by_itself(window, qtbot, path, "the disk is full")
        # with the disk still full, a new recording is refused with the reason, audio goes on
        window.record_button.click()
        assert not c.recording
        window.start_button.click()  # nothing may hold the mount when it goes


def test_an_unwritable_folder_is_refused_with_a_clear_message_and_the_audio_goes_on(
    window, qtbot, voicegui_home, tmp_path
):
    c = window.controller
    run_tone(window, qtbot)
    # tests run as root, where permissions do not stop a write: a read-only mount does
    with tmpfs(voicegui_home / "recordings", "size=64k,ro"):
        window.record_button.click()
        assert not c.recording and not window.record_button.isChecked()
        text = next(t for t in window.banners.texts() if "Cannot record" in t)
        assert str(voicegui_home / "recordings") in text
        assert "the folder cannot be written to" in text, text
        assert text.count("Cannot record") == 1 and "choose another folder" in text.lower()
        assert_audio_goes_on(window, qtbot, 0.5)
    # a file where the folder should be
    blocker = tmp_path / "not a folder"
    blocker.write_text("x", encoding="utf-8")
    assert not c.record_start(path=blocker / "take.wav")
    text = next(t for t in window.banners.texts() if "Cannot record" in t)
    assert "is not a folder" in text, text
    assert_audio_goes_on(window, qtbot, 0.5)
    # another folder (chosen in the Audio menu, kept for the next session) records again
    folder = tmp_path / "prises de son"
    window.set_recordings_folder(folder)
    window.record_flac_action.setChecked(True)
    assert window.toggle_record()
    qtbot.wait(1000)
    assert not window.toggle_record()
    summary = c.last_recording
    good = Path(summary["path"])
    assert good.parent == folder and good.suffix == ".flac"
    audio, rate = sf.read(str(good), dtype="float32")
    assert sf.info(str(good)).format == "FLAC" and len(audio) == summary["frames"] > 0.5 * RATE
    assert_tone_throughout(audio)
    assert window.state_data()["recording"] == {"folder": str(folder), "dry": False,
                                                "format": "flac"}  # fmt: skip


def test_a_killed_audio_host_leaves_a_valid_recording(window, qtbot):
    c = window.controller
    run_tone(window, qtbot)
    window.record_button.click()
    path = Path(c.recording_path)
    qtbot.wait(2000)
    c.host.kill()
    qtbot.waitUntil(lambda: not c.running, timeout=5000)
    assert not c.recording and not window.record_button.isChecked()
    audio, rate = sf.read(str(path), dtype="float32")  # flushed twice a second
    assert rate == RATE and len(audio) >= 1.0 * RATE
    assert_tone_throughout(audio)


def test_live_records_to_a_file(jack_server, tmp_path):
    out = tmp_path / "sortie vocale.wav"
    api = jack_server["hostapi"]
    done = subprocess.run(
        [sys.executable, "-m", "voicegui", "live", "--input", f"{api}:system", "--output",
         f"{api}:system", "--seconds", "3", "--record", str(out), "--record-dry"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)["recording"]
    assert summary["path"] == str(out) and summary["error"] == ""
    info = sf.info(str(out))
    assert info.samplerate == RATE and info.frames == summary["frames"] == summary["fed"]
    assert abs(info.frames / RATE - 3.0) < 0.6
    assert sf.info(str(tmp_path / "sortie vocale-dry.wav")).frames == info.frames


def test_a_disk_too_slow_loses_whole_blocks_counted_and_the_feed_never_allocates(tmp_path):
    """The block thread's side copies into the preallocated ring only; when the writer cannot
    keep up, what does not fit is dropped and counted, never queued without bound."""
    import threading
    import tracemalloc

    from voicegui.engine.recording import TakeRecorder

    take = TakeRecorder(tmp_path / "take.wav", RATE, with_dry=True, ring_seconds=0.1)
    block = np.full(BLOCK, 0.25, dtype=np.float32)
    gate, stalled = threading.Event(), threading.Event()
    write = take._drain
    take._drain = lambda *a: (stalled.set(), gate.wait(), write(*a))  # a disk that stalls
    take.start()
    # the writer has made its own buffers and waits on the disk: what is allocated from here
    # on is the feed's
    assert stalled.wait(10)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(100):  # 2 s of blocks while the writer stalls
        take.feed(block, block)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # only what the feed's own code allocates: other threads of this test process (servers and
    # clients of earlier tests) allocate meanwhile too
    import voicegui.engine.recording as recording

    mine = [tracemalloc.Filter(True, recording.__file__)]
    diff = after.filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
    grown = sum(s.size_diff for s in diff if s.size_diff > 0)
    assert grown < 16_384, grown  # no buffer grows with the audio
    gate.set()
    summary = take.stop()
    assert summary["fed"] == 100 * BLOCK
    assert summary["dropped"] > 0 and summary["frames"] + summary["dropped"] == summary["fed"]
    assert sf.info(str(tmp_path / "take.wav")).frames == summary["frames"]
    assert sf.info(str(tmp_path / "take-dry.wav")).frames == summary["frames"]
