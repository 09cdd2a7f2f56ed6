"""The window's side of the global hotkeys: menu entries, the indicator, the dialog, the state.

The listener and the commands to the audio host run in ``HotkeyService`` (voicegui/hotkeys); this
object only brings its news to the window's thread (queued signals) and carries out what needs the
window: loading preset N (the Nth in the presets list), the next or previous preset, recording,
and showing bypass in the settings after a hotkey switched it in the audio host.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction

from voicegui.hotkeys.bindings import PRESET_SLOTS, Bindings
from voicegui.hotkeys.service import HotkeyService, HotkeyState
from voicegui.ui.hotkeys_dialog import HotkeysDialog
from voicegui.ui.presets_panel import NAME_ROLE
from voicegui.ui.talk_indicator import TalkIndicator

if TYPE_CHECKING:
    from voicegui.ui.main_window import MainWindow

log = logging.getLogger(__name__)
NOTICE_KEY = "hotkeys"


class WindowHotkeys(QObject):
    stateChanged = Signal(object)  # HotkeyState, from the dispatcher thread (queued)
    actionRequested = Signal(str)  # an action the window carries out (queued)

    def __init__(self, window: MainWindow, backend_factory: Any = None) -> None:
        super().__init__(window)
        self.window = window
        c = window.controller
        kwargs = {"backend_factory": backend_factory} if backend_factory is not None else {}
        self.service = HotkeyService(
            c.host, on_change=self.stateChanged.emit, on_action=self.actionRequested.emit, **kwargs
        )
        self.state: HotkeyState | None = None
        self._bypass_toggles = 0
        self._shown_error = ""
        self.dialog: HotkeysDialog | None = None
        self.indicator = TalkIndicator()
        self.stateChanged.connect(self._on_state)
        self.actionRequested.connect(self.run_action)
        c.settingsChanged.connect(self._on_settings)
        self.service.sync_bypass(c.settings.engine.bypass)

        self.dialog_action = QAction("&Hotkeys…", window)
        self.dialog_action.setToolTip("Push-to-talk, mute, bypass, presets and recording keys")
        self.dialog_action.triggered.connect(self.open_dialog)
        self.mute_action = QAction("&Mute", window)
        self.mute_action.setCheckable(True)
        self.mute_action.triggered.connect(lambda _=False: self.service.toggle_mute())
        self.ptt_action = QAction("&Push-to-talk", window)
        self.ptt_action.setCheckable(True)
        self.ptt_action.setToolTip("The voice is heard only while the push-to-talk key is held")
        self.ptt_action.triggered.connect(self.set_push_to_talk)
        self._update_actions()

    # ---- state -------------------------------------------------------------------------------
    @property
    def bindings(self) -> Bindings:
        return self.service.bindings

    def restore(self, data: object) -> list[str]:
        """Bindings from the saved state; returns notes on entries that were dropped."""
        bindings, notes = Bindings.from_dict(data)
        self.apply(bindings)
        return notes

    def to_dict(self) -> dict:
        return self.bindings.to_dict()

    def apply(self, bindings: Bindings) -> None:
        self.service.apply(bindings)
        self._update_actions()

    def set_push_to_talk(self, on: bool) -> None:
        self.apply(self.bindings.with_push_to_talk(on))
        self.window.request_save()

    def _update_actions(self) -> None:
        b = self.bindings
        self.ptt_action.setEnabled(b.get("push_to_talk") is not None)
        self.ptt_action.setChecked(b.push_to_talk_active)

    def close(self) -> None:
        self.service.close()

    # ---- from the dispatcher thread ----------------------------------------------------------
    def _on_state(self, state: HotkeyState) -> None:
        self.state = state
        c = self.window.controller
        if state.bypass_toggles > self._bypass_toggles:
            self._bypass_toggles = state.bypass_toggles
            if state.bypass != c.settings.engine.bypass:
                c.set_bypass(state.bypass)  # the audio host already plays it
        self.mute_action.setChecked(state.muted)
        self._show_indicator()
        problem = self.problem()
        if problem != self._shown_error:
            if problem:
                self.window.banners.show_message(
                    "warning", f"Global hotkeys do not work: {problem}", NOTICE_KEY,
                    action_text="Hotkeys…", action=self.open_dialog,
                )  # fmt: skip
            else:
                self.window.banners.dismiss(NOTICE_KEY)
            self._shown_error = problem

    def problem(self) -> str:
        """Why hotkeys are set but nothing listens for them ('' when all is well)."""
        s = self.state
        if s is None or not self.bindings.keys or s.listening:
            return ""
        if s.error:
            return s.error
        return "" if s.status.usable else s.status.text

    def _show_indicator(self) -> None:
        s, bypass = self.state, self.window.controller.settings.engine.bypass
        if s is None:
            self.indicator.show_state(False, False, False, bypass)
            return
        ptt_problem = self.problem() if self.bindings.push_to_talk_active else ""
        self.indicator.show_state(s.push_to_talk, s.held, s.muted, bypass, ptt_problem)

    def _on_settings(self, settings: Any) -> None:
        self.service.sync_bypass(settings.engine.bypass)
        self._show_indicator()

    # ---- actions the window carries out ------------------------------------------------------
    def preset_names(self) -> list[str]:
        lst = self.window.presets.list
        return [lst.item(i).data(NAME_ROLE) for i in range(lst.count())]

    def preset_at(self, slot: int) -> str:
        names = self.preset_names()
        return names[slot - 1] if 0 < slot <= len(names) else ""

    def run_action(self, action: str) -> None:
        w = self.window
        if action in PRESET_SLOTS:
            name = self.preset_at(PRESET_SLOTS[action])
            if not name:
                w.show_notice("info", f"There is no preset {PRESET_SLOTS[action]}.", NOTICE_KEY)
                return
            self._load(name)
        elif action in ("preset_next", "preset_previous"):
            names = self.preset_names()
            if not names:
                return
            current = w.presets.current or w.presets.selected()
            i = names.index(current) if current in names else -1
            step = 1 if action == "preset_next" else -1
            if i < 0:  # none loaded yet: next is the first, previous the last
                i = -1 if step > 0 else 0
            self._load(names[(i + step) % len(names)])
        elif action == "record":
            w.toggle_record()
        else:
            log.info("hotkey action %s has nothing to do in the window", action)

    def _load(self, name: str) -> None:
        w = self.window
        w.presets.select(name)
        if w.presets.load(name) is not None:
            w.statusBar().showMessage(f"Preset: {name}", 4000)

    # ---- the dialog --------------------------------------------------------------------------
    def open_dialog(self) -> HotkeysDialog:
        from voicegui.hotkeys import macos

        if self.dialog is not None:
            self.dialog.raise_()
            return self.dialog
        svc = self.service

        def retry():
            svc.retry()
            return svc.status()

        dialog = HotkeysDialog(
            self.bindings,
            svc.status(),
            check=svc.check,
            preset_names=self.preset_at,
            ask_permission=macos.ask,
            retry=retry,
            parent=self.window,
        )
        dialog.capturing.connect(svc.pause)

        def finished(result: int) -> None:
            self.dialog = None
            svc.pause(False)
            if result == HotkeysDialog.DialogCode.Accepted:
                self.apply(dialog.bindings)
                self.window.request_save()
            dialog.deleteLater()

        dialog.finished.connect(finished)
        self.dialog = dialog
        dialog.open()
        return dialog
