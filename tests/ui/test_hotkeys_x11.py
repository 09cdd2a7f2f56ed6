"""Global hotkeys for real: an X server (Xvfb), another program's window holding the focus, keys
typed with xdotool (XTest), the engine running on the JACK dummy server with a tone as input.

Push-to-talk gates the engine's output (silent until the key is held, silent again after), mute
toggles it, bypass switches in the audio host and the window follows, and preset 3 loads. The
push-to-talk and mute checks poll the audio host's metrics with plain sleeps, never letting the
window's event loop run: the listener thread reaches the audio host by itself.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from tests.ui.conftest import pick_jack, start
from tests.ui.xdisplay import HAVE_X, FocusedWindow, start_xvfb, xdotool
from voicegui.hotkeys.bindings import Bindings, parse

pytestmark = [
    pytest.mark.jack,
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_X, reason="Xvfb and xdotool are needed"),
]

SILENT_DB = -120.0  # the metrics' floor: an all-zero block
TONE_HZ, TONE_AMPLITUDE = 440.0, 0.5


@pytest.fixture
def xserver(monkeypatch):
    proc, display = start_xvfb()
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    yield display
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def other_window(xserver):
    w = FocusedWindow(xserver)
    yield w
    w.close()


def poll(condition, timeout: float = 5.0) -> bool:
    """Wait with plain sleeps: the window's event loop does not run meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def watch(read, seconds: float) -> list[float]:
    """Readings of ``read`` over ``seconds`` (plain sleeps)."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(read())
        time.sleep(0.005)
    return out


def tone(rate: int) -> np.ndarray:
    # one second holds a whole number of periods, so the looped input has no seam
    n = np.arange(rate)
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * n / rate)).astype(np.float32)


def tone_level(block: int, rate: int) -> tuple[float, float]:
    """The tone's RMS level in dB, and how far one block's level can stray from it: the mean of
    sin^2 over N samples is 1/2 - (1/2N) sum cos(2 theta_n), and that sum of cosines stepping by
    2w (w = 2 pi f / r) is at most 1 / sin(w): relative to 1/2, 1 / (N sin(w))."""
    level = 20 * math.log10(TONE_AMPLITUDE / math.sqrt(2))
    rel = 1.0 / (block * math.sin(2 * math.pi * TONE_HZ / rate))
    return level, -10 * math.log10(1 - rel) + 0.01  # + float32 rounding of the sum


def test_hotkeys_act_while_another_program_has_the_focus(xserver, other_window, window, qtbot):
    c, hk = window.controller, window.hotkeys
    env = other_window.env
    assert other_window.has_focus()
    pick_jack(window, qtbot)
    c.change(voice={"voice": "passthrough"}, engine={"block_time": 0.01})
    hk.apply(
        Bindings()
        .with_key("push_to_talk", parse("f9"))
        .with_key("mute", parse("ctrl+alt+m"))
        .with_key("bypass", parse("ctrl+alt+b"))
        .with_key("preset_3", parse("ctrl+alt+3"))
    )
    qtbot.waitUntil(lambda: hk.state is not None and hk.state.push_to_talk, timeout=5000)
    assert hk.state.status.text == "Global hotkeys: X11"
    start(window, qtbot)
    c.engine.test_signal(tone(c.engine.sample_rate))
    block = c.engine.refresh()["block_dev"]
    level, tol = tone_level(block, c.engine.sample_rate)

    def out_db() -> float:
        return c.host.snapshot().output_db

    def heard() -> bool:
        return abs(out_db() - level) <= tol

    def blocks() -> int:
        return c.host.snapshot().blocks

    # push-to-talk on, key up: silent from the first block on, with a tone at the input
    b0 = blocks()
    assert poll(lambda: blocks() > b0 + 20)
    assert out_db() == SILENT_DB and c.host.snapshot().input_db > level - 1
    xdotool(env, "key", "F10")  # a key that is not push-to-talk opens nothing
    assert set(watch(out_db, 0.3)) == {SILENT_DB}

    t0 = time.monotonic()
    xdotool(env, "keydown", "F9")
    assert poll(heard), out_db()
    opened = time.monotonic() - t0
    samples = watch(out_db, 0.2)
    assert all(abs(s - level) <= tol for s in samples), samples  # stays open while held
    xdotool(env, "keyup", "F9")
    assert poll(lambda: out_db() == SILENT_DB), out_db()
    print(f"\npush-to-talk: key down to the tone at full level {opened * 1e3:.0f} ms")
    assert "F9" in other_window.received()  # the other program had the keys all along

    # mute toggles, whatever push-to-talk does
    hk.set_push_to_talk(False)
    assert poll(heard)
    xdotool(env, "key", "ctrl+alt+m")
    assert poll(lambda: out_db() == SILENT_DB)
    qtbot.waitUntil(lambda: "MUTED" in hk.indicator.texts(), timeout=3000)
    xdotool(env, "key", "ctrl+alt+m")
    assert poll(heard)

    # bypass: the audio host switches at once; the window's settings and indicator follow
    def live_bypass() -> bool:
        return c.engine.live_settings().engine.bypass

    xdotool(env, "key", "ctrl+alt+b")
    assert poll(live_bypass)
    qtbot.waitUntil(lambda: c.settings.engine.bypass, timeout=3000)
    assert window.bypass_button.isChecked() and "BYPASS" in hk.indicator.texts()
    xdotool(env, "key", "ctrl+alt+b")
    assert poll(lambda: not live_bypass())
    qtbot.waitUntil(lambda: not c.settings.engine.bypass, timeout=3000)

    # preset 3: the third preset of the list loads, in the window and in the running engine
    third = hk.preset_names()[2]
    wanted = window.presets.store.load(third).settings
    xdotool(env, "key", "ctrl+alt+3")
    qtbot.waitUntil(lambda: window.presets.current == third, timeout=5000)
    assert c.settings.voice.pitch == wanted.voice.pitch
    assert c.settings.voice.voice == wanted.voice.voice
    qtbot.waitUntil(
        lambda: c.engine.live_settings().voice.pitch == wanted.voice.pitch, timeout=5000
    )

    keys = other_window.received()
    assert {"m", "b", "3"} <= set(keys), keys
    assert other_window.has_focus()


class Recorder:
    """Stands for the audio host: what the hotkeys sent it."""

    def __init__(self) -> None:
        self.talk: list[tuple] = []
        self.bypass: list[bool] = []

    def set_talk(self, *args) -> None:
        self.talk.append(args)

    def set_bypass(self, on: bool) -> bool:
        self.bypass.append(on)
        return True


def test_shifted_keys_and_the_keyboard_map(xserver, other_window):
    """Keys are named by their unshifted symbol (Ctrl+Shift+1, not Ctrl+Shift+!), extra modifiers
    do not fire toggles, and keys this keyboard lacks are refused before they are bound."""
    from Xlib import XK
    from Xlib.display import Display

    from voicegui.hotkeys.pynput_backend import X11_KEYSYM_NAME, PynputBackend
    from voicegui.hotkeys.service import HotkeyService

    env = other_window.env
    actions: list[str] = []
    host = Recorder()
    svc = HotkeyService(
        host, on_action=actions.append, backend_factory=lambda: PynputBackend("X11")
    )
    try:
        svc.apply(
            Bindings()
            .with_key("preset_1", parse("ctrl+shift+1"))
            .with_key("preset_2", parse("ctrl+alt+page_up"))
            .with_key("bypass", parse("ctrl+alt+b"))
        )
        assert poll(lambda: svc.state().listening)
        xdotool(env, "key", "ctrl+shift+1", "ctrl+alt+Prior", "ctrl+alt+shift+b", "ctrl+alt+b")
        assert poll(lambda: len(actions) == 2 and len(host.bypass) == 1), (actions, host.bypass)
        assert actions == ["preset_1", "preset_2"] and host.bypass == [True]
        # what the server's keyboard map has decides what the listener can see
        d = Display(xserver)
        for key in ("f24", "f12", "a", "page_up"):
            keysym = XK.string_to_keysym(X11_KEYSYM_NAME[key])
            has = bool(d.keysym_to_keycode(keysym))
            why = svc.check(parse(f"ctrl+{key}"))
            assert (why == "") == has, (key, why)
            if not has:
                assert "this keyboard has no" in why
        d.close()
    finally:
        svc.close()
    assert not svc.state().listening
