"""Wayland: the GlobalShortcuts portal over a real (private) D-Bus session bus.

Where no portal runs, or the portal lacks the interface, the app says plainly that this desktop
does not offer global shortcuts. Where it offers them, the shortcuts are bound with their
combinations as preferred triggers and push-to-talk gets press and release.
"""

from __future__ import annotations

import threading

import pytest

from tests.core.dbus_session import HAVE_DBUS, Portal, session_bus
from tests.waiting import wait_until
from voicegui.hotkeys.backend import NoBackend, choose_backend
from voicegui.hotkeys.bindings import Bindings, parse
from voicegui.hotkeys.portal import PortalBackend, portal_version, trigger
from voicegui.hotkeys.service import HotkeyService

pytestmark = pytest.mark.skipif(not HAVE_DBUS, reason="dbus-daemon is not installed")

WAYLAND = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}


@pytest.fixture
def bus(monkeypatch):
    with session_bus() as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address


def test_no_portal_on_the_bus_means_not_offered(bus):
    version, why = portal_version()
    assert version == 0 and "no desktop portal" in why
    backend = choose_backend("linux", WAYLAND)
    assert isinstance(backend, NoBackend)
    status = backend.status()
    assert not status.usable
    assert status.text == "Wayland: global hotkeys are not offered by this desktop"
    assert "no desktop portal" in status.detail


def test_a_portal_without_global_shortcuts_is_said_plainly(bus):
    with Portal(version=0):
        version, why = portal_version()
        assert version == 0
        assert "does not offer global shortcuts" in why
        status = choose_backend("linux", WAYLAND).status()
        assert status.text == "Wayland: global hotkeys are not offered by this desktop"


def test_xwayland_is_the_fallback_and_keeps_the_reason(bus):
    # no portal but an X server (XWayland): X11 programs' keys can still be seen
    backend = choose_backend("linux", {**WAYLAND, "DISPLAY": ":99"})
    assert backend.kind == "X11"
    assert "no desktop portal" in backend.wayland_note


def test_triggers_follow_the_xdg_shortcut_format():
    assert trigger(parse("ctrl+alt+m")) == "CTRL+ALT+m"
    assert trigger(parse("super+shift+f5")) == "SHIFT+LOGO+F5"
    assert trigger(parse("ctrl+page_up")) == "CTRL+Prior"
    assert trigger(parse("pause")) == "Pause"


def test_bound_shortcuts_give_press_and_release(bus):
    bindings = (
        Bindings().with_key("push_to_talk", parse("f9")).with_key("mute", parse("ctrl+alt+m"))
    )
    events: list[tuple[str, bool]] = []
    got = threading.Event()

    def emit(action: str, down: bool) -> None:
        events.append((action, down))
        got.set()

    with Portal(version=2, assign={"mute": "Ctrl+Alt+N"}) as portal:
        version, why = portal_version()
        assert (version, why) == (2, "")
        backend = choose_backend("linux", WAYLAND)
        assert isinstance(backend, PortalBackend)
        assert "GlobalShortcuts v2" in backend.status().text
        backend.start(bindings, emit)
        assert wait_until(lambda: backend.listening), backend.status()
        # what the desktop was asked for, and what it says it assigned
        asked = {sid: props["preferred_trigger"][1] for sid, props in portal.bound}
        assert asked == {"push_to_talk": "F9", "mute": "CTRL+ALT+m"}
        assert backend.assigned == {"push_to_talk": "F9", "mute": "Ctrl+Alt+N"}
        assert "Mute (toggle): Ctrl+Alt+N" in backend.status().detail  # the dialog shows it
        portal.press("push_to_talk", True)
        assert wait_until(lambda: ("push_to_talk", True) in events)
        portal.press("push_to_talk", False)
        portal.press("teleport", True)  # not ours: ignored
        portal.press("mute", True)
        assert wait_until(lambda: len(events) >= 3)
        assert events == [("push_to_talk", True), ("push_to_talk", False), ("mute", True)]
        backend.stop()
        assert not backend.listening
        assert wait_until(lambda: portal.closed)  # the session is closed on the portal's side too
        assert ("mute", False) in events  # what was held ends with the listener


def test_a_cancelled_dialog_is_reported_and_push_to_talk_stays_off(bus):
    class Host:
        talk: tuple = ()

        def set_talk(self, *args):
            self.talk = args

        def set_bypass(self, on):
            pass

    host = Host()
    with Portal(version=1, answer=1):
        svc = HotkeyService(host, backend_factory=lambda: choose_backend("linux", WAYLAND))
        try:
            svc.apply(Bindings().with_key("push_to_talk", parse("f9")))
            assert wait_until(lambda: "cancelled" in svc.state().status.text)
            state = svc.state()
            assert not state.listening and not state.status.usable
            assert wait_until(lambda: host.talk == (False, False, False))  # not silent for nothing
        finally:
            svc.close()
