"""Voice: which voice, its compute options, and the reference clip (file, drop, or recording)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from voicegui.settings import Settings
from voicegui.voices.registry import VOICES, voice_available

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.mp3 *.aiff *.aif *.opus);;All files (*)"
TOOLTIP = Qt.ItemDataRole.ToolTipRole


class VoicePanel(QWidget):
    changed = Signal(dict)  # VoiceSettings field -> value
    referenceChosen = Signal(str)  # a path the user picked: the main window validates and applies
    referenceCleared = Signal()
    recordRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.availability: dict[str, tuple[bool, str]] = {}
        self.voice = QComboBox()
        self.voice.setAccessibleName("Voice")
        self.voice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.voice.setMinimumContentsLength(12)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.unavailable = QLabel()
        self.unavailable.setWordWrap(True)
        self.unavailable.setEnabled(False)
        self.backend = QComboBox()
        self.backend.addItem("PyTorch", "torch")
        self.backend.addItem("ONNX Runtime", "onnx")
        self.backend.setAccessibleName("Inference backend")
        self.backend.setToolTip(
            "Which runtime runs the neural voice. Changing it reloads the "
            "voice (restarts the audio streams)."
        )
        self.device = QComboBox()
        for label, value in (
            ("Automatic", "auto"),
            ("CPU", "cpu"),
            ("CUDA GPU", "cuda"),
            ("Apple GPU (MPS)", "mps"),
        ):
            self.device.addItem(label, value)
        self.device.setAccessibleName("Compute device")
        self.device.setToolTip(
            "Where the neural voice runs. The readouts show the device that is actually active."
        )

        self.reference = QLineEdit()
        self.reference.setReadOnly(True)
        self.reference.setAcceptDrops(False)  # drops go to the window, which validates them
        self.reference.setPlaceholderText("Drop an audio file on the window, or choose one")
        self.reference.setAccessibleName("Reference clip path")
        self.browse = QPushButton("Choose…")
        self.browse.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
        self.browse.setAccessibleName("Choose reference clip")
        self.browse.setToolTip(
            "Pick an audio file of the voice you want to sound like "
            "(a few seconds of clean speech)."
        )
        self.record = QPushButton("Record…")
        self.record.setAccessibleName("Record reference clip")
        self.record.setToolTip(
            "Record a few seconds from the chosen microphone, listen to it, "
            "and use it as the reference."
        )
        self.clear = QPushButton("Clear")
        self.clear.setAccessibleName("Clear reference clip")
        self.ref_status = QLabel()
        self.ref_status.setWordWrap(True)
        self.ref_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.ref_icon = QLabel()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        label = QLabel("&Voice")
        label.setBuddy(self.voice)
        form.addRow(label, self.voice)
        form.addRow("", self.description)
        form.addRow("", self.unavailable)
        compute = QHBoxLayout()
        compute.addWidget(self.backend, 1)
        compute.addWidget(self.device, 1)
        label = QLabel("Ru&ns on")
        label.setBuddy(self.backend)
        form.addRow(label, compute)
        label = QLabel("Re&ference")
        label.setBuddy(self.reference)
        form.addRow(label, self.reference)
        buttons = QHBoxLayout()
        buttons.addWidget(self.browse)
        buttons.addWidget(self.record)
        buttons.addWidget(self.clear)
        buttons.addStretch(1)
        form.addRow("", buttons)
        status = QHBoxLayout()
        status.addWidget(self.ref_icon)
        status.addWidget(self.ref_status, 1)
        form.addRow("", status)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)

        self._fill_voices()
        self.voice.currentIndexChanged.connect(self._on_voice)
        self.backend.currentIndexChanged.connect(
            lambda: self.changed.emit({"backend": self.backend.currentData()})
        )
        self.device.currentIndexChanged.connect(
            lambda: self.changed.emit({"device": self.device.currentData()})
        )
        self.browse.clicked.connect(self._browse)
        self.record.clicked.connect(self.recordRequested)
        self.clear.clicked.connect(self.referenceCleared)

    def _fill_voices(self) -> None:
        notes = []
        for name, info in VOICES.items():
            ok, why = voice_available(name)
            self.availability[name] = (ok, why)
            self.voice.addItem(info.label, name)
            i = self.voice.count() - 1
            self.voice.setItemData(i, info.description if ok else f"Unavailable: {why}", TOOLTIP)
            if not ok:
                # a disabled entry explains itself instead of disappearing
                self.voice.model().item(i).setEnabled(False)
                notes.append(f"{info.label}: {why}")
        self.unavailable.setText("\n".join(notes))
        self.unavailable.setVisible(bool(notes))

    def _on_voice(self) -> None:
        name = self.voice.currentData()
        self._show_voice(name)
        self.changed.emit({"voice": name})

    def _show_voice(self, name: str) -> None:
        info = VOICES.get(name)
        self.description.setText(info.description if info else "")
        neural = bool(info and info.neural)
        needs_ref = bool(info and info.needs_reference)
        for w in (self.backend, self.device):
            w.setEnabled(neural)
            if not neural:
                w.setToolTip(
                    f"Only for neural voices; {info.label if info else name} runs on "
                    "the CPU without a model."
                )
        tip = "" if needs_ref else f"{info.label if info else name} does not use a reference clip."
        self.reference.setToolTip(tip or "The voice you want to sound like.")

    def _browse(self) -> None:
        start = str(Path(self.reference.text()).parent) if self.reference.text() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a reference clip", start, AUDIO_FILTER)
        if path:
            self.referenceChosen.emit(path)

    # ---- settings -> widgets -----------------------------------------------------------------
    def set_settings(self, s: Settings) -> None:
        v = s.voice
        for combo, data in (
            (self.voice, v.voice),
            (self.backend, v.backend),
            (self.device, v.device),
        ):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(data)))
            combo.blockSignals(False)
        self._show_voice(v.voice)
        if self.reference.text() != v.reference:
            self.reference.setText(v.reference)
            self.reference.setCursorPosition(len(v.reference))
        self.clear.setEnabled(bool(v.reference))

    def set_running(self, running: bool) -> None:
        # the engine holds the microphone while running
        self.record.setEnabled(not running)
        self.record.setToolTip(
            "Stop the voice changer to record a reference."
            if running
            else "Record a few seconds from the chosen microphone, listen to it, "
            "and use it as the reference."
        )

    def show_reference(self, text: str, error: bool = False) -> None:
        icon = (
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if error
            else QStyle.StandardPixmap.SP_DialogApplyButton
        )
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.ref_icon.setPixmap(
            self.style().standardIcon(icon).pixmap(size)
            if text
            else self.style().standardIcon(icon).pixmap(0)
        )
        self.ref_status.setText(text)
        self.ref_status.setAccessibleName("Reference problem" if error else "Reference clip")
