"""Runs the hotkeys: the OS listener, and a thread that turns actions into commands.

Push-to-talk, mute and bypass go straight to the audio host through its thread-safe client
(``AudioHost.set_talk`` / ``set_bypass``), so they act within a block even while the window is
busy drawing or loading. What needs the window's own logic (loading a preset, recording) is handed
to ``on_action``, which the window turns into a queued call on its thread. Listener callbacks only
put events on a queue: on Windows they run inside the keyboard hook, which must return at once.

Push-to-talk gates the voice only while a listener really listens: where none can (no desktop
session, Wayland without the portal, macOS without the permission) the output is not left silent
behind a key that cannot be pressed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from voicegui.hotkeys.backend import Backend, BackendStatus, HotkeyBackendError, choose_backend
from voicegui.hotkeys.bindings import Bindings, KeyCombo

log = logging.getLogger(__name__)

TICK = 0.25  # s between checks that the listener still listens
IDLE = BackendStatus("none", True, "Global hotkeys: none set")


class TalkHost(Protocol):
    """The part of ``AudioHost`` the hotkeys use (thread-safe)."""

    def set_talk(self, push_to_talk: bool, held: bool, muted: bool) -> Any: ...

    def set_bypass(self, on: bool) -> Any: ...


@dataclass(frozen=True)
class HotkeyState:
    push_to_talk: bool  # push-to-talk gates the voice now (a key is bound and a listener runs)
    held: bool
    muted: bool
    bypass: bool
    listening: bool
    status: BackendStatus
    error: str = ""  # why the listener is not running although hotkeys are set
    bypass_toggles: int = 0  # how often a hotkey toggled bypass (the window follows new ones)

    @property
    def open(self) -> bool:
        """The voice is heard (not muted, and push-to-talk off or held)."""
        return not self.muted and (self.held or not self.push_to_talk)


class HotkeyService:
    def __init__(
        self,
        host: TalkHost,
        on_change: Callable[[HotkeyState], None] | None = None,
        on_action: Callable[[str], None] | None = None,
        backend_factory: Callable[[], Backend] = choose_backend,
    ) -> None:
        self.host = host
        self.on_change = on_change or (lambda state: None)
        self.on_action = on_action or (lambda action: None)
        self._factory = backend_factory
        self._backend: Backend | None = None
        self.bindings = Bindings()
        self.held = False
        self.muted = False
        self.bypass = False
        self.paused = False
        self.bypass_toggles = 0
        self.error = ""
        self._sent: tuple | None = None
        self._was_listening = False  # the current listener has been heard to listen
        self._lock = threading.RLock()  # apply/pause/close from the window vs the dispatcher
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="voicegui-hotkeys", daemon=True)
        self._thread.start()

    # ---- the window's side (any thread) ------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The listener for this desktop (probed on first use: the Wayland probe asks D-Bus)."""
        with self._lock:
            if self._backend is None:
                self._backend = self._factory()
            return self._backend

    def status(self) -> BackendStatus:
        return self.backend.status()

    def check(self, combo: KeyCombo) -> str:
        """Why the listener here cannot see ``combo`` ('' when it can)."""
        return self.backend.check(combo)

    def apply(self, bindings: Bindings) -> None:
        """Use ``bindings``; the listener (re)starts on the service's thread, and only when at
        least one hotkey is set (nothing is probed or started for none)."""
        self.bindings = bindings
        self._queue.put(("restart", False))

    def pause(self, paused: bool) -> None:
        """While hotkeys are being set their keys must not act; the listener keeps running, so
        push-to-talk stays in force (silent) instead of opening the voice meanwhile."""
        self._queue.put(("pause", bool(paused)))

    def retry(self) -> None:
        """Probe and start the listener again (e.g. after macOS granted the permission)."""
        self._queue.put(("restart", True))

    def toggle_mute(self) -> None:
        self._queue.put(("action", "mute", True))

    def set_push_to_talk(self, on: bool) -> None:
        self.apply(self.bindings.with_push_to_talk(on))

    def sync_bypass(self, on: bool) -> None:
        """The window changed bypass itself: the next toggle starts from there."""
        self._queue.put(("bypass", bool(on)))

    def state(self) -> HotkeyState:
        backend = self._backend
        listening = backend is not None and backend.listening
        return HotkeyState(
            push_to_talk=self.bindings.push_to_talk_active and listening,
            held=self.held,
            muted=self.muted,
            bypass=self.bypass,
            listening=listening,
            status=backend.status() if backend is not None else IDLE,
            error=self.error,
            bypass_toggles=self.bypass_toggles,
        )

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        with self._lock:
            if self._backend is not None:
                self._backend.stop()

    # ---- listener -> queue -------------------------------------------------------------------
    def _restart(self, reprobe: bool) -> None:
        with self._lock:
            old = self._backend
            if old is not None:
                old.stop()
            if reprobe:
                self._backend = None
        self.error = ""
        self._was_listening = False
        if not self.bindings.keys:
            return
        backend = self.backend
        try:
            backend.start(self.bindings, self._emit)
        except HotkeyBackendError as exc:
            self.error = str(exc)
            log.warning("global hotkeys unavailable: %s", exc)

    def _emit(self, action: str, pressed: bool) -> None:
        # the listener's thread (inside the keyboard hook on Windows): only queue
        self._queue.put(("action", action, pressed))

    # ---- the dispatcher thread ---------------------------------------------------------------
    def _loop(self) -> None:
        last: HotkeyState | None = None
        while True:
            try:
                item = self._queue.get(timeout=TICK)
            except queue.Empty:
                item = ("sync",)
            if item is None:
                return
            try:
                if item[0] == "restart":
                    self._restart(item[1])
                elif item[0] == "action":
                    self._act(item[1], item[2])
                elif item[0] == "bypass":
                    self.bypass = item[1]
                elif item[0] == "pause":
                    self.paused = item[1]
                    self.held = False
                with self._lock:
                    state = self.state()
                if state.listening:
                    self._was_listening = True
                elif self._was_listening and not self.error and self.bindings.keys:
                    self._was_listening = False
                    self.error = "the key listener stopped; press Try again in the Hotkeys dialog"
                    log.warning("global hotkeys: the listener stopped")
                    state = self.state()
                if not state.listening and self.held:
                    self.held = False  # the key cannot be seen any more: it counts as released
                    state = self.state()
                self._send_talk(state)
                if state != last:
                    last = state
                    self.on_change(state)
            except Exception:
                log.exception("hotkey dispatch failed")

    def _act(self, action: str, pressed: bool) -> None:
        if self.paused:
            return
        if action == "push_to_talk":
            self.held = pressed
            return
        if not pressed:
            return
        if action == "mute":
            self.muted = not self.muted
        elif action == "bypass":
            self.bypass = not self.bypass
            self.bypass_toggles += 1
            try:
                self.host.set_bypass(self.bypass)  # now, whatever the window is doing
            except Exception as exc:
                log.info("bypass not sent to the audio host: %s", exc)
        else:
            self.on_action(action)

    def _send_talk(self, state: HotkeyState) -> None:
        talk = (state.push_to_talk, state.held, state.muted)
        if talk == self._sent:
            return
        try:
            self.host.set_talk(*talk)
        except Exception as exc:  # the host is restarting: it gets the state when it starts
            log.info("push-to-talk state not sent to the audio host: %s", exc)
        self._sent = talk
