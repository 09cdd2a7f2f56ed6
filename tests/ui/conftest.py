"""Fixtures for the desktop app tests: a real main window on the real JACK server."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import JACK

try:
    import PySide6  # noqa: F401
except ImportError:  # the core's tests must run without Qt; these are skipped then
    collect_ignore_glob = ["test_*.py"]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ["QT_QPA_PLATFORM"] == "offscreen":
    # the offscreen platform's default screen is 800x600, smaller than the app's minimum size;
    # give it a common desktop screen so geometry restore is tested as on a real desktop
    _config = Path(tempfile.gettempdir()) / "voicegui-offscreen-1920x1080.json"
    _config.write_text(
        json.dumps(
            {
                "screens": [
                    {
                        "name": "test",
                        "x": 0,
                        "y": 0,
                        "width": 1920,
                        "height": 1080,
                        "logicalDpi": 96,
                        "logicalBaseDpi": 96,
                        "dpr": 1,
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_config}"


@pytest.fixture
def app(qapp):
    from voicegui.ui.app import create_application

    return create_application()


def open_window(qtbot, host=None):
    """The main window as `voicegui` builds it (``host``: another audio host service)."""
    from voicegui.ui.app import create_window

    w = create_window(host=host)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def close_window(w) -> None:
    # leave the JACK server without our clients for the next test; the audio host exits
    w.controller.shutdown()
    w.close()


@pytest.fixture
def window(app, qtbot, jack_server):
    """The main window as `voicegui` builds it (fresh VOICEGUI_HOME), engines stopped after."""
    w = open_window(qtbot)
    yield w
    close_window(w)


def pick_jack(window, qtbot) -> None:
    """Choose JACK and its 'system' ports in the device panel, like a user would."""
    panel = window.devices
    assert panel.select_hostapi(JACK)
    assert panel.select("input", "system")
    assert panel.select("output", "system")
    a = window.controller.settings.audio
    assert (a.input.hostapi, a.input.name) == (JACK, "system")
    assert (a.output.hostapi, a.output.name) == (JACK, "system")


def start(window, qtbot) -> None:
    c = window.controller
    if not c.running:
        window.start_button.click()
    assert c.running, window.banners.texts()
    qtbot.waitUntil(lambda: c.engine.snapshot().blocks > 5, timeout=5000)


# ---- Seed-VC weights for the neural-voice tests ------------------------------------------------
# the parity kit's random-weight checkpoints (tests/seedvc/conftest.py builds and caches them)
from tests.seedvc import conftest as _seedvc  # noqa: E402

seedvc_kit = _seedvc.seedvc_kit
kit_checkpoints = _seedvc.kit_checkpoints

SEEDVC_FILES = (
    "DiT_uvit_tat_xlsr_ema.pth",
    "hift.pt",
    "campplus_cn_common.bin",
    "config.json",
    "pytorch_model.bin",
)


@pytest.fixture(scope="session")
def seedvc_folder(request, tmp_path_factory) -> Path:
    """What a user copies from another machine: Seed-VC's files under their published names,
    the kit's checkpoints plus a tiny random XLS-R with the real model's 1024-d output."""
    from tests.seedvc.conftest import write_published_layout

    kit = request.getfixturevalue("kit_checkpoints")
    folder = tmp_path_factory.mktemp("offline") / "Seed-VC téléchargé"
    return write_published_layout(kit, folder, xlsr_subfolder="xlsr")


def import_seedvc(window, qtbot, folder: Path, timeout: float = 120.0) -> list[tuple]:
    """Import the weights through the window, as the voice panel's button does; returns the
    progress reports seen (label, done, total)."""
    seen: list[tuple] = []
    window.models.progress.connect(lambda *a: seen.append(a))
    with qtbot.waitSignal(window.models.finished, timeout=int(timeout * 1000)) as blocker:
        assert window.import_model(folder)
    name, outcome, text = blocker.args
    assert (name, outcome) == ("seedvc", "ok"), text
    return seen
