"""Shared fixtures: a real JACK server (dummy driver), an isolated VOICEGUI_HOME, speech files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.signals import espeak

JACK = "JACK Audio Connection Kit"
# pipewire_server: a headless PipeWire server; voice_server: a real `voicegui serve` on localhost;
# the RVC kit's fixtures, one instance each for the whole run (its weights are installed once)
pytest_plugins = ["tests.pipewire", "tests.voice_server", "tests.rvc.kit"]
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed
    return report


@pytest.fixture(autouse=True)
def voicegui_home(request, tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """Every test gets its own config/presets/models/logs folder, kept only if the test failed.

    Many tests install model files into it (up to ~600 MB each), so keeping every one would fill
    the disk in a single run.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VOICEGUI_HOME", str(home))
    yield home
    if request.node.stash.get(CALL_PASSED, False):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server with the dummy driver at 48 kHz / 256 frames, started for the session."""
    from voicegui.audio import jack
    from voicegui.audio.backend import reinitialize

    server = None
    if not jack.server_running():
        server = jack.DummyServer(rate=48000, period=256).start()
    reinitialize()  # PortAudio lists JACK only if a server ran when it initialised
    yield {"hostapi": JACK, "rate": 48000, "period": 256, "server": server}
    if server is not None:
        # PortAudio must let go of its JACK client before the server goes, or its own
        # shutdown at interpreter exit asserts and aborts the process
        from voicegui.audio.backend import terminate

        terminate()
        server.stop()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def speech_48k(tmp_path_factory) -> np.ndarray:
    """espeak-ng speech (male en-us), resampled to 48 kHz, float32 mono."""
    import soundfile as sf
    import soxr

    path = espeak(
        "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore.",
        tmp_path_factory.mktemp("speech") / "speech.wav",
    )
    x, sr = sf.read(str(path), dtype="float32")
    return soxr.resample(x, sr, 48000).astype(np.float32)


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> Path:
    """A speech WAV at espeak's own rate (22.05 kHz), with a non-ASCII name."""
    return espeak(
        "Hello there, this is a reference voice for testing.",
        tmp_path_factory.mktemp("refs") / "référence_声.wav",
    )


def pytest_configure(config):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
