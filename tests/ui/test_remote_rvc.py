"""An RVC voice on a Remote GPU from the window, against the real `voicegui serve` of the run
(tests/voice_server.py): no RVC weights on this machine, the voice imported into the window's
own library, the server's address and token, the Test button naming the server's own voices,
the voice file sent to the server with progress, and the engine on JACK playing what the server
computes."""

from __future__ import annotations

import pytest

from tests.remote.test_rvc import renamed_copy
from tests.rvc.installed import kit_model
from tests.ui.conftest import pick_jack
from tests.ui.test_remote_gpu import BlockLog, press_test, type_into
from tests.voice_server import SERVER_LIBRARY_VOICE

pytestmark = [pytest.mark.jack, pytest.mark.slow]

# Light enough for the server's one CPU thread most of the time; a late block falls back to the
# dry voice, counted (BlockLog checks every voiced block is one or the other).
ENGINE = {
    "block_time": 0.5,
    "extra_left_time": 0.3,
    "extra_right_time": 0.0,
    "crossfade_time": 0.02,
}


def test_rvc_voice_on_a_remote_gpu(window, qtbot, voice_server, rvc_assets, tmp_path, speech_48k):  # noqa: F811
    if not voice_server.rvc:
        pytest.skip("the RVC kit is not here: the test server serves Seed-VC only")
    panel, c = window.voice, window.controller
    lib, box = panel.rvc, panel.remote
    panel.voice.setCurrentIndex(panel.voice.findData("rvc"))
    assert c.settings.voice.voice == "rvc"
    # no shared weights here: the library offers them, until a server computes the voice
    assert lib.weights_box.isVisibleTo(window)
    panel.device.setCurrentIndex(panel.device.findData("remote"))
    assert c.settings.voice.device == "remote"
    assert box.isVisibleTo(window) and not lib.weights_box.isVisibleTo(window)
    # nothing about weights this machine lacks: the server computes the voice
    assert not panel.model_box.isVisibleTo(window)
    assert "RVC" not in panel.unavailable.text() and "Seed-VC" not in panel.unavailable.text()

    type_into(qtbot, box.address, voice_server.address)
    type_into(qtbot, box.token, voice_server.token)
    text = press_test(qtbot, box)
    assert text.startswith("round trip") and SERVER_LIBRARY_VOICE in text, text

    # a voice of this machine's library, which the server has never seen: it is sent, and
    # the window says so while it goes
    shown: list[str] = []
    show_loading = panel.show_loading
    panel.show_loading = lambda t: (shown.append(t), show_loading(t))
    c.change(engine=ENGINE)
    model = renamed_copy(kit_model(rvc_assets), tmp_path, "window")
    assert lib.import_files([model])
    qtbot.waitUntil(lambda: not lib.busy, timeout=60000)
    assert c.settings.voice.model == model.stem
    pick_jack(window, qtbot)
    window.start_button.click()
    qtbot.waitUntil(lambda: c.running and not c.loading, timeout=120000)
    eng = c.engine
    qtbot.waitUntil(lambda: eng.snapshot().voice == "rvc", timeout=60000)
    assert any("sending" in t and model.name in t for t in shown), shown
    assert not any("could not be loaded" in t for t in window.banners.texts())
    snap = eng.snapshot()
    assert snap.provider == "remote: CPU (torch, fp32) on cpu", snap.provider
    assert snap.latency.network == pytest.approx(snap.latency.block)

    blocks = BlockLog("rvc")
    c.metricsUpdated.connect(blocks)
    eng.test_signal(speech_48k * 0.5)
    came, fell = blocks.wait_for_voice(qtbot)
    print(f"\nremote RVC in the window: {came} voiced blocks came back, {fell} fell back")
    if fell:
        assert eng.snapshot().last_error.startswith("RemoteLate")
    assert "1 live stream)" in press_test(qtbot, box)
    eng.test_signal(None)
