"""Non-modal message banners above the main area (errors, warnings, notes) with an optional action.

A banner never blocks: the user keeps talking and tuning while it is visible. Messages with the
same key replace each other instead of piling up (a voice that keeps failing updates one banner).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_ICONS = {
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
}
MAX_BANNERS = 4


class Banner(QFrame):
    closed = Signal()

    def __init__(self, kind: str, text: str, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind, self.key = kind, key
        # a styled panel with the palette's alternate base reads well in light and dark themes
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(self.palette().ColorRole.AlternateBase)
        self.setAccessibleName(f"{kind} message")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(
            self.style().standardIcon(_ICONS.get(kind, _ICONS["info"])).pixmap(size)
        )
        lay.addWidget(self.icon)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        self.action = QPushButton()
        self.action.hide()
        lay.addWidget(self.action)
        close = QToolButton()
        close.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss this message")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.dismiss)
        lay.addWidget(close)
        self._callback: Callable[[], None] | None = None
        self.action.clicked.connect(self._on_action)

    @property
    def text(self) -> str:
        return self.label.text()

    def set_action(self, text: str | None, callback: Callable[[], None] | None) -> None:
        self._callback = callback
        if text and callback:
            self.action.setText(text)
            self.action.setAccessibleName(text)
            self.action.show()
        else:
            self.action.hide()

    def _on_action(self) -> None:
        callback = self._callback
        self.dismiss()
        if callback is not None:
            callback()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()
        self.deleteLater()


class BannerArea(QWidget):
    """A vertical stack of banners; newest at the top, at most MAX_BANNERS."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(2)
        self._banners: list[Banner] = []
        self.history: list[tuple[str, str]] = []  # (kind, text) of every message shown
        self.hide()

    def show_message(
        self,
        kind: str,
        text: str,
        key: str | None = None,
        action_text: str | None = None,
        action: Callable[[], None] | None = None,
    ) -> Banner:
        key = key or text
        self.history.append((kind, text))
        for b in self._banners:
            if b.key == key:
                b.kind = kind
                b.label.setText(text)
                b.set_action(action_text, action)
                return b
        banner = Banner(kind, text, key, self)
        banner.set_action(action_text, action)
        banner.closed.connect(lambda b=banner: self._forget(b))
        self._banners.insert(0, banner)
        self._lay.insertWidget(0, banner)
        while len(self._banners) > MAX_BANNERS:
            self._banners[-1].dismiss()
        self.show()
        return banner

    def _forget(self, banner: Banner) -> None:
        if banner in self._banners:
            self._banners.remove(banner)
        if not self._banners:
            self.hide()

    def dismiss(self, key: str) -> None:
        for b in list(self._banners):
            if b.key == key:
                b.dismiss()

    def banners(self) -> list[Banner]:
        return list(self._banners)

    def texts(self) -> list[str]:
        return [b.text for b in self._banners]
