"""An RVC voice in the window, end to end: the shared weights imported (`voicegui models import
rvc DIR` with the kit's assets/), a kit voice model chosen in the voice library, the engine on
the JACK dummy server running it in the audio host, speech converted, a live pitch change that
needs no restart, the built-in RVC preset keeping the chosen model."""

from __future__ import annotations

import pytest

from tests.rvc.installed import kit_index, kit_model
from tests.ui.conftest import pick_jack, start
from voicegui.cli import main
from voicegui.presets import PresetStore

pytestmark = pytest.mark.jack

ENGINE = {
    "block_time": 0.25,
    "extra_left_time": 0.3,
    "extra_right_time": 0.0,
    "crossfade_time": 0.03,
}


@pytest.mark.slow
def test_library_voice_runs_on_jack(window, qtbot, rvc_assets, speech_48k):  # noqa: F811
    assert main(["models", "import", "rvc", str(rvc_assets)]) == 0
    pick_jack(window, qtbot)
    c = window.controller
    assert c.change(engine=ENGINE)
    start(window, qtbot)
    eng = c.engine
    assert eng.snapshot().voice == "dsp"

    # RVC with no model yet: the built-in voice keeps playing, the library asks for one
    combo = window.voice.voice
    combo.setCurrentIndex(combo.findData("rvc"))
    panel = window.voice.rvc
    assert panel.isVisible() and eng.voice.name == "dsp"
    panel.f0.setCurrentIndex(panel.f0.findData("yin"))
    assert c.settings.voice.f0_method == "yin"

    # a kit voice and its index into the library: the first voice is put to use and loads in
    # the background while the built-in voice plays on
    model = kit_model(rvc_assets)
    assert panel.import_files([model, kit_index(rvc_assets)])
    qtbot.waitUntil(lambda: not panel.busy, timeout=60000)
    assert c.settings.voice.model == model.stem
    qtbot.waitUntil(lambda: not c.loading, timeout=180000)
    assert not any("could not be loaded" in t for t in window.banners.texts()), (
        window.banners.texts()
    )
    assert c.running and eng.voice.name == "rvc"
    assert "torch" in window.voice.provider.text() and "CPU" in window.voice.provider.text()

    eng.test_signal(speech_48k * 0.5)  # speech instead of JACK's silent input
    voiced = set()

    def on_metrics(snap) -> None:
        if snap.voice == "rvc" and not snap.gated and snap.output_db > -90:
            voiced.add(snap.blocks)

    c.metricsUpdated.connect(on_metrics)
    qtbot.waitUntil(lambda: len(voiced) >= 3, timeout=120000)
    snap = eng.snapshot()
    print(
        f"\nRVC on JACK: {snap.blocks} blocks, compute {snap.compute_ms:.0f} ms per "
        f"{snap.latency.block * 1e3:.0f} ms block, {snap.dropped_blocks} dropped, {snap.provider}"
    )
    assert snap.voice_errors == 0, snap.last_error
    assert "rvc" in window.readouts.values["provider"].text()

    # live controls: pitch and index rate reach the running voice without a new one
    voice, restarts = eng.voice, c.restarts
    assert c.change(voice={"pitch": 5.0, "index_rate": 0.8})
    assert not c.loading and eng.voice is voice and c.restarts == restarts
    blocks = eng.snapshot().blocks
    qtbot.waitUntil(lambda: eng.snapshot().blocks >= blocks + 2, timeout=60000)
    assert eng.snapshot().voice_errors == 0, eng.snapshot().last_error

    # the built-in CPU preset names no model: loading it keeps this one (and its pitch)
    preset = next(p for p in PresetStore().list() if p.builtin and p.settings.voice.voice == "rvc")
    assert preset.settings.voice.model == ""
    c.load_preset(preset)
    assert c.settings.voice.model == model.stem and c.settings.voice.pitch == 0.0
    assert c.settings.engine.block_time == preset.settings.engine.block_time
