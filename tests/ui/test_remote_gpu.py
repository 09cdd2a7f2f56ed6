"""Remote GPU in the window, against a real `voicegui serve` on localhost (tests/voice_server.py):
the compute device choice, the server's address/token/certificate fields, the Test button, the
engine running the remote Seed-VC voice on JACK, the banner when the server is lost and back,
and the token kept out of presets."""

from __future__ import annotations

import json
import stat

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import pick_jack
from voicegui import paths
from voicegui.remote.auth import CLIENT_TOKENS_FILE

pytestmark = [pytest.mark.jack, pytest.mark.slow]

# Light enough for the server's one CPU thread: the kit's random-weight model computes a block
# of this geometry in well under a block on an idle machine (`voicegui bench --remote`), so
# replies usually come back in time; when the machine is too loaded they fall back, counted.
LIGHT = {
    "engine": {
        "block_time": 0.5,
        "extra_left_time": 0.5,
        "extra_dit_left_time": 0.2,
        "extra_right_time": 0.0,
        "crossfade_time": 0.02,
    },
    "voice": {"diffusion_steps": 2, "cfg_rate": 0.0, "max_prompt_time": 1.0},
}
CAME_BACK = 3  # voiced blocks the server's replies played
FELL_BACK = 20  # ... or this many in a row replaced by the dry voice (a CPU too slow)
RECONNECT_TIMEOUT = 180.0
SPEECH_DB = -60.0  # a block of the test speech (at half scale: around -25 dB)


def type_into(qtbot, field, text: str) -> None:
    """Type like a user: select what is there, type over it, press Enter."""
    field.setFocus()
    field.selectAll()
    qtbot.keyClick(field, Qt.Key.Key_Backspace)
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Return)


def press_test(qtbot, box) -> str:
    box.test.click()
    assert not box.test.isEnabled() and "testing" in box.result.text()
    qtbot.waitUntil(box.test.isEnabled, timeout=30000)
    return box.result.text()


def banner(window, word: str) -> str | None:
    return next((t for t in window.banners.texts() if "Remote GPU" in t and word in t), None)


def speech(snap) -> bool:
    return not snap.gated and snap.input_db > SPEECH_DB


class BlockLog:
    """Each block the engine played, from the window's metrics (30 Hz, blocks of 0.5 s: every
    block is seen): whether the voice ran and whether its error count rose on that block."""

    def __init__(self, voice: str = "seedvc") -> None:
        self.voice = voice
        self.snaps: dict[int, object] = {}

    def __call__(self, snap) -> None:
        if snap.voice == self.voice:
            self.snaps.setdefault(snap.blocks, snap)

    def outcomes(self) -> list[tuple[int, int]]:
        """(block, new errors, snapshot) of voiced blocks after a voiced block (the remote
        voice plays block k-1's reply at block k: after a gap it plays the silence before)."""
        out = []
        for b, snap in sorted(self.snaps.items()):
            prev = self.snaps.get(b - 1)
            if prev is not None and speech(prev) and speech(snap):
                out.append((b, snap.voice_errors - prev.voice_errors, snap))
        return out

    def wait_for_voice(self, qtbot) -> tuple[int, int]:
        """Until CAME_BACK voiced blocks played the server's reply, or FELL_BACK the dry
        fallback (a machine too loaded to compute in time); checks every voiced block was one
        or the other. -> (came back, fell back)."""

        def counts() -> tuple[int, int]:
            out = self.outcomes()
            return sum(d == 0 for _, d, _ in out), sum(d for _, d, _ in out)

        qtbot.waitUntil(
            lambda: counts()[0] >= CAME_BACK or counts()[1] >= FELL_BACK, timeout=120000
        )
        for b, d, snap in self.outcomes():
            assert d in (0, 1), (b, d)  # the voice's block or the fallback's, counted once
            assert snap.output_db > SPEECH_DB, (b, snap.output_db)  # never silence for speech
        return counts()


def test_remote_gpu_from_the_window(window, qtbot, voice_server, speech_file, speech_48k):
    panel, c = window.voice, window.controller
    box = panel.remote
    combo = panel.voice
    seedvc = combo.findData("seedvc")

    # no Seed-VC weights on this machine: the voice can still be picked, for a server
    assert combo.model().item(seedvc).isEnabled(), panel.unavailable.text()
    combo.setCurrentIndex(seedvc)
    assert c.settings.voice.voice == "seedvc"
    assert not box.isVisibleTo(window) and panel.model_box.isVisibleTo(window)
    panel.device.setCurrentIndex(panel.device.findData("remote"))
    assert c.settings.voice.device == "remote"
    # the server's fields instead of the weights' download box
    assert box.isVisibleTo(window) and not panel.model_box.isVisibleTo(window)

    # a wrong token: the Test says so
    type_into(qtbot, box.address, voice_server.address)
    assert c.settings.voice.remote_address == voice_server.address
    type_into(qtbot, box.token, "not-the-servers-token-0123456789")
    text = press_test(qtbot, box)
    assert text.startswith("not usable") and "token" in text, text
    # the right one: round trip and what the server computes on
    type_into(qtbot, box.token, voice_server.token)
    text = press_test(qtbot, box)
    assert text.startswith("round trip") and "ms" in text, text
    assert "CPU (torch, fp32) on cpu" in text and "voicegui" in text, text

    # the token lives in the config folder (owner-only), keyed by the address
    store = paths.config_dir() / CLIENT_TOKENS_FILE
    assert json.loads(store.read_text()) == {voice_server.address: voice_server.token}
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    # the engine on JACK with the remote voice
    c.change(**LIGHT)
    assert window.use_reference(speech_file)
    pick_jack(window, qtbot)
    window.start_button.click()
    qtbot.waitUntil(lambda: c.running, timeout=60000)
    eng = c.engine
    qtbot.waitUntil(lambda: eng.snapshot().voice == "seedvc", timeout=10000)
    blocks = BlockLog()
    c.metricsUpdated.connect(blocks)
    eng.test_signal(speech_48k * 0.5)  # speech instead of JACK's silent input

    came, fell = blocks.wait_for_voice(qtbot)
    print(f"\nremote voice in the window: {came} voiced blocks came back, {fell} fell back")
    snap = eng.snapshot()
    if fell:
        assert snap.last_error.startswith("RemoteLate"), snap.last_error
        assert window.readouts.values["errors"].text() != "0"
    # where it runs, as the server says; the network is its own part of the latency
    assert snap.provider == "remote: CPU (torch, fp32) on cpu"
    assert panel.provider.text() == snap.provider
    assert snap.latency.network == pytest.approx(snap.latency.block)
    # the Test button while it runs: the server holds this window's stream
    assert "1 live stream)" in press_test(qtbot, box)

    # the user falls silent and the server dies meanwhile (tests/remote kill it mid-speech):
    # the window says so before anyone speaks again; the audio goes on
    eng.test_signal(None)
    qtbot.waitUntil(lambda: eng.snapshot().gated, timeout=10000)
    voice_server.kill()
    try:
        qtbot.waitUntil(lambda: banner(window, "lost") is not None, timeout=30000)
        assert c.running and eng.running
        print(banner(window, "lost"))
        kinds = {b.kind for b in window.banners.banners() if b.key == "event:remote"}
        assert kinds == {"warning"}, kinds
        n = eng.snapshot().blocks
        qtbot.waitUntil(lambda: eng.snapshot().blocks > n + 2, timeout=10000)
    finally:
        voice_server.start()
    qtbot.waitUntil(
        lambda: banner(window, "reconnected") is not None, timeout=int(RECONNECT_TIMEOUT * 1000)
    )
    print(banner(window, "reconnected"))
    assert banner(window, "lost") is None  # replaced, not stacked
    kinds = {b.kind for b in window.banners.banners() if b.key == "event:remote"}
    assert kinds == {"info"}, kinds
    # the voice is back: the new server holds its new stream, and its replies play again
    assert "1 live stream)" in press_test(qtbot, box)
    blocks.snaps.clear()
    eng.test_signal(speech_48k * 0.5)
    came, fell = blocks.wait_for_voice(qtbot)
    print(f"after reconnecting: {came} voiced blocks came back, {fell} fell back")

    # a preset keeps the server's address, never its token
    assert window.presets.save_as("Remote GPU") is not None
    saved = (paths.presets_dir() / "Remote GPU.json").read_text(encoding="utf-8")
    assert voice_server.address in saved
    assert voice_server.token not in saved
    assert "token" not in saved.lower()


def test_certificate_field_reaches_a_tls_server(window, qtbot, tls_voice_server, tls_files):
    panel, c = window.voice, window.controller
    box = panel.remote
    panel.voice.setCurrentIndex(panel.voice.findData("seedvc"))
    panel.device.setCurrentIndex(panel.device.findData("remote"))
    type_into(qtbot, box.address, tls_voice_server.address)
    type_into(qtbot, box.token, tls_voice_server.token)
    # no certificate: refused, and the message says what to do
    text = press_test(qtbot, box)
    assert text.startswith("not usable") and "give its certificate" in text, text
    # another server's certificate: refused
    type_into(qtbot, box.certificate, str(tls_files["other"]))
    assert "does not verify" in press_test(qtbot, box)
    # the server's own
    type_into(qtbot, box.certificate, str(tls_files["cert"]))
    assert c.settings.voice.remote_ca == str(tls_files["cert"])
    text = press_test(qtbot, box)
    assert text.startswith("round trip") and "on cpu" in text, text
    # the certificate's path goes into presets (it is not a secret); the token does not
    assert window.presets.save_as("TLS server") is not None
    saved = (paths.presets_dir() / "TLS server.json").read_text(encoding="utf-8")
    assert str(tls_files["cert"]).replace("\\", "\\\\") in saved
    assert tls_voice_server.token not in saved
