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


@pytest.fixture
def window(app, qtbot, jack_server):
    """The main window as `voicegui` builds it (fresh VOICEGUI_HOME), engines stopped after."""
    from voicegui.ui.app import create_window

    w = create_window()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    # leave the JACK server without our clients for the next test
    w.controller.shutdown()
    w.close()


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
