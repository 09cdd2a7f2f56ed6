"""Push-to-talk, mute and bypass at a glance: small coloured tags in the transport bar."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

STYLE = "QLabel {{ background: {bg}; color: {fg}; border-radius: 4px; padding: 2px 6px; }}"
COLOURS = {
    "talking": ("#2e7d32", "white"),
    "silent": ("#616161", "white"),
    "unavailable": ("#ef6c00", "white"),
    "muted": ("#c62828", "white"),
    "bypass": ("#f9a825", "black"),
}


class TalkIndicator(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Push-to-talk, mute and bypass state")
        self.ptt = QLabel()
        self.ptt.setAccessibleName("Push-to-talk state")
        self.muted = QLabel("MUTED")
        self.muted.setAccessibleName("Muted")
        self.muted.setToolTip("The voice is muted (the mute hotkey or Audio -> Mute)")
        self.bypass = QLabel("BYPASS")
        self.bypass.setAccessibleName("Bypass on")
        self.bypass.setToolTip("You hear your own voice, dry")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        for w in (self.ptt, self.muted, self.bypass):
            lay.addWidget(w)
            w.hide()
        self._paint(self.muted, "muted")
        self._paint(self.bypass, "bypass")

    @staticmethod
    def _paint(label: QLabel, kind: str) -> None:
        bg, fg = COLOURS[kind]
        label.setStyleSheet(STYLE.format(bg=bg, fg=fg))
        label.setProperty("kind", kind)

    def show_state(
        self, push_to_talk: bool, held: bool, muted: bool, bypass: bool, ptt_problem: str = ""
    ) -> None:
        """``ptt_problem``: a push-to-talk key is set but nothing can listen for it (why)."""
        if ptt_problem:
            self.ptt.setText("PTT unavailable")
            self.ptt.setToolTip(f"Push-to-talk is off: {ptt_problem}")
            self._paint(self.ptt, "unavailable")
        elif push_to_talk:
            self.ptt.setText("PTT: talking" if held else "PTT: silent")
            self.ptt.setToolTip(
                "Push-to-talk: the voice is heard while its key is held"
                if not held
                else "Push-to-talk key held: the voice is heard"
            )
            self._paint(self.ptt, "talking" if held else "silent")
        self.ptt.setVisible(bool(ptt_problem) or push_to_talk)
        self.muted.setVisible(muted)
        self.bypass.setVisible(bypass)

    def texts(self) -> list[str]:
        """What a user reads now (tests)."""
        return [w.text() for w in (self.ptt, self.muted, self.bypass) if w.isVisibleTo(self)]
