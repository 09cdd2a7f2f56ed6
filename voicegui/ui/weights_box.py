"""A box that offers to install a model's weights: a state line, *Download…* and *Import from
folder…*, and while a transfer runs a progress bar with its label and a Cancel button.

The Seed-VC weights (voice panel) and the RVC shared weights (RVC library) both use it; the
main window runs the transfers. The box only shows their states; whether it is shown at all is
its owner's call (installed weights, a Remote GPU, a transfer under way: ``busy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

STEPS = 1000  # the progress bar's resolution


@dataclass(frozen=True)
class WeightsTexts:
    """What a box says: its buttons' texts, tooltips and accessible names.

    An empty accessible name leaves that widget's name unset (a screen reader reads its text).
    """

    name: str  # the box
    download: str  # the Download button's text
    download_name: str
    download_tip: str
    import_name: str
    import_tip: str
    progress_name: str
    cancel_name: str
    state_name: str = ""
    progress_label_name: str = ""


def _name(widget: QWidget, name: str) -> None:
    if name:
        widget.setAccessibleName(name)


class WeightsBox(QFrame):
    downloadRequested = Signal()
    importRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, texts: WeightsTexts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        _name(self, texts.name)
        self.busy = False  # a transfer runs
        self._what = ""  # what the running transfer does, e.g. "Downloading Seed-VC"
        self.state = QLabel()
        self.state.setWordWrap(True)
        _name(self.state, texts.state_name)
        self.download_button = QPushButton(texts.download)
        self.download_button.setAccessibleName(texts.download_name)
        self.download_button.setToolTip(texts.download_tip)
        self.import_button = QPushButton("Import from folder…")
        self.import_button.setAccessibleName(texts.import_name)
        self.import_button.setToolTip(texts.import_tip)
        self.progress = QProgressBar()
        self.progress.setRange(0, STEPS)
        self.progress.setAccessibleName(texts.progress_name)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        _name(self.progress_label, texts.progress_label_name)
        self.cancel = QPushButton("Cancel")
        self.cancel.setAccessibleName(texts.cancel_name)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        progress = QHBoxLayout()
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.cancel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.state)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_label)
        lay.addLayout(progress)
        self.download_button.clicked.connect(self.downloadRequested)
        self.import_button.clicked.connect(self.importRequested)
        self.cancel.clicked.connect(self.cancelRequested)

    def show_idle(self, text: str = "") -> None:
        """No transfer runs: the buttons are back; ``text`` says how the last one ended."""
        self.busy = False
        for w in (self.progress, self.cancel):
            w.hide()
        self.cancel.setEnabled(True)
        self.cancel.setText("Cancel")
        self.progress_label.setText(text)
        self.progress_label.setVisible(bool(text))
        for w in (self.download_button, self.import_button):
            w.setEnabled(True)

    def show_started(self, what: str) -> None:
        self.busy = True
        self._what = what
        for w in (self.download_button, self.import_button):
            w.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first report
        self.progress.show()
        self.cancel.show()
        self.progress_label.setText(f"{what}…")
        self.progress_label.show()

    def show_progress(self, label: str, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, STEPS)
            self.progress.setValue(min(STEPS, round(STEPS * done / total)))
            amount = f"{done / 1e6:.1f} / {total / 1e6:.1f} MB"
        else:
            self.progress.setRange(0, 0)
            amount = f"{done / 1e6:.1f} MB"
        self.progress_label.setText(f"{self._what}: {label}, {amount}")

    def show_cancelling(self) -> None:
        self.cancel.setEnabled(False)
        self.cancel.setText("Cancelling…")
