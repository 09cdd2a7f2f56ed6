"""Voice: which voice, its compute options, model weights, and the reference clip.

The backend and device combos apply to neural voices only; the device list shows what this
machine can use once it is known (probing needs torch, so it happens off the GUI thread when a
neural voice is first involved). When Seed-VC's weights are missing, a box (``weights_box``)
offers to download them (after a confirmation that states size and licence) or to import them
from a folder, with a progress bar and a Cancel button; the main window runs those in the
background. While the RVC voice is chosen, its voice library (``rvc_library``) shows below the
voice.
"""

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
    QProgressBar,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from voicegui.settings import Settings
from voicegui.ui.compute import ALWAYS, BACKENDS, DEVICES, probed_devices
from voicegui.ui.remote_box import RemoteBox
from voicegui.ui.rvc_library import RvcLibraryPanel
from voicegui.ui.weights_box import WeightsBox, WeightsTexts
from voicegui.voices.catalog import REMOTE_VOICES, VOICES, voice_available, voice_selectable

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.mp3 *.aiff *.aif *.opus);;All files (*)"
TOOLTIP = Qt.ItemDataRole.ToolTipRole
MODEL = "seedvc"  # the model whose weights the model box manages
SEEDVC_WEIGHTS = WeightsTexts(
    name="Seed-VC weights",
    download="Download Seed-VC…",
    download_name="Download Seed-VC",
    download_tip="Download the Seed-VC weights from the Hugging Face Hub. You are shown the size "
    "and licence first; nothing is downloaded before you confirm.",
    import_name="Import Seed-VC from a folder",
    import_tip="For offline machines: copy already-downloaded Seed-VC files from a folder "
    "(found by file name anywhere below it) and verify them.",
    progress_name="Model transfer progress",
    cancel_name="Cancel the model transfer",
    progress_label_name="Model transfer state",
)
BACKEND_TIP = (
    "Which runtime runs the neural voice. Changing it loads the voice again in the background; "
    "the current voice keeps playing until the new one is ready."
)
PRECISIONS = (
    ("Automatic", "auto"),
    ("fp32 (exact)", "fp32"),
    ("bf16", "bf16"),
    ("int8", "int8"),
    ("fp16 (GPU)", "fp16"),
)
PRECISION_TIP = (
    "Number format of the neural voice's math. Automatic picks bf16 on CPUs that compute it "
    "natively (AVX512-BF16 or AMX: about twice as fast, ~41 dB from fp32), fp16 on a GPU, "
    "else fp32. int8 is faster still on the CPU (~43 dB). Changing it loads the voice again "
    "in the background."
)
DEVICE_TIP = (
    "Where the neural voice runs. Changing it loads the voice again in the background. "
    "'Runs on' below shows the device that is actually active."
)


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setEnabled(False)  # the palette's disabled colour: a hint, not an alarm
    return label


class DeviceCombo(QComboBox):
    aboutToShow = Signal()

    def showPopup(self) -> None:  # noqa: N802 (Qt naming)
        self.aboutToShow.emit()
        super().showPopup()


class VoicePanel(QWidget):
    changed = Signal(dict)  # VoiceSettings field -> value
    referenceChosen = Signal(str)  # a path the user picked: the main window validates and applies
    referenceCleared = Signal()
    recordRequested = Signal()
    downloadRequested = Signal()  # the user wants the Seed-VC weights downloaded (asks first)
    importRequested = Signal()  # ... imported from a folder (asks which)
    cancelModelRequested = Signal()
    neuralShown = Signal()  # a neural voice is selected: the device list is worth probing

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
        for label, value in BACKENDS:
            self.backend.addItem(label, value)
        self.backend.setAccessibleName("Inference backend")
        self.backend.setToolTip(BACKEND_TIP)
        self.precision = QComboBox()
        for label, value in PRECISIONS:
            self.precision.addItem(label, value)
        self.precision.setAccessibleName("Precision")
        self.precision.setToolTip(PRECISION_TIP)
        self.device = DeviceCombo()
        self.device.aboutToShow.connect(self.neuralShown)
        self.device.setAccessibleName("Compute device")
        self.device.setToolTip(DEVICE_TIP)
        self._device_value = "auto"
        self._fill_devices()
        self.remote = RemoteBox()  # shown while the compute device is a Remote GPU
        self.remote.setVisible(False)
        self.compute_note = _note()
        self.provider = QLabel()
        self.provider.setAccessibleName("Neural voice runs on")
        self.provider.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.provider.setToolTip("The device and runtime the loaded neural voice actually uses.")
        # background loading of a neural voice: a busy bar and what is happening
        self.loading = QProgressBar()
        self.loading.setRange(0, 0)
        self.loading.setTextVisible(False)
        self.loading.setMaximumHeight(12)
        self.loading.setAccessibleName("Voice loading")
        self.loading_label = QLabel()
        self.loading_label.setAccessibleName("Voice loading state")
        self.loading_row = QWidget()
        row = QHBoxLayout(self.loading_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.loading_label)
        row.addWidget(self.loading, 1)
        self.loading_row.hide()
        self._build_model_box()
        self.rvc = RvcLibraryPanel()
        self.rvc.hide()

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
        form.addRow("", self.model_box)
        form.addRow(self.rvc)
        label = QLabel("&Backend")
        label.setBuddy(self.backend)
        form.addRow(label, self.backend)
        label = QLabel("Comp&ute device")
        label.setBuddy(self.device)
        form.addRow(label, self.device)
        form.addRow(self.remote)
        label = QLabel("Pre&cision")
        label.setBuddy(self.precision)
        form.addRow(label, self.precision)
        form.addRow("", self.compute_note)
        form.addRow("Runs on", self.provider)
        form.addRow("", self.loading_row)
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
        self.device.currentIndexChanged.connect(self._on_device)
        self.precision.currentIndexChanged.connect(
            lambda: self.changed.emit({"precision": self.precision.currentData()})
        )
        self.browse.clicked.connect(self._browse)
        self.record.clicked.connect(self.recordRequested)
        self.clear.clicked.connect(self.referenceCleared)
        self.rvc.changed.connect(self.changed)
        self.remote.changed.connect(self.changed)
        self.rvc.libraryChanged.connect(self.refresh_availability)

    # ---- model weights ---------------------------------------------------------------------
    def _build_model_box(self) -> None:
        self.model_box = WeightsBox(SEEDVC_WEIGHTS)
        # the names the window and the tests reach the box's parts by
        self.model_state = self.model_box.state
        self.download_button = self.model_box.download_button
        self.import_button = self.model_box.import_button
        self.model_progress = self.model_box.progress
        self.model_progress_label = self.model_box.progress_label
        self.model_cancel = self.model_box.cancel
        self.model_box.downloadRequested.connect(self.downloadRequested)
        self.model_box.importRequested.connect(self.importRequested)
        self.model_box.cancelRequested.connect(self.cancelModelRequested)
        self.show_model_idle()

    @property
    def model_busy(self) -> bool:
        return self.model_box.busy

    def show_model_idle(self, text: str = "") -> None:
        """No transfer runs: the buttons are back; ``text`` says how the last one ended."""
        self.model_box.show_idle(text)
        self._update_model_box()

    def show_model_started(self, what: str) -> None:
        self.model_box.show_started(what)
        self._update_model_box()

    def show_model_progress(self, label: str, done: int, total: int) -> None:
        self.model_box.show_progress(label, done, total)

    def show_model_cancelling(self) -> None:
        self.model_box.show_cancelling()

    def _update_model_box(self) -> None:
        ok, why = self.availability.get(MODEL, (True, ""))
        label = VOICES[MODEL].label if MODEL in VOICES else MODEL
        self.model_state.setText(
            f"{label} is not installed. Download its weights, or import them from a folder "
            "if this machine is offline."
            if not ok
            else f"{label} is installed."
        )
        remote = self._device_value == "remote" and self.voice.currentData() in REMOTE_VOICES
        # a server computes the voice: no weights are needed here
        self.model_box.setVisible((not ok and not remote) or self.model_busy)

    # ---- voices ------------------------------------------------------------------------------
    def _fill_voices(self) -> None:
        for name, info in VOICES.items():
            self.voice.addItem(info.label, name)
        self.refresh_availability()

    def refresh_availability(self) -> None:
        """Re-check which voices can be chosen (after weights were installed or removed)."""
        model = self.voice.model()
        for i in range(self.voice.count()):
            name = self.voice.itemData(i)
            info = VOICES[name]
            ok, why = voice_available(name)
            self.availability[name] = (ok, why)
            self.voice.setItemData(i, info.description if ok else f"Unavailable: {why}", TOOLTIP)
            # a disabled entry explains itself instead of disappearing; one whose missing parts
            # its own panel provides (the RVC library) stays selectable
            model.item(i).setEnabled(ok or voice_selectable(name)[0])
        self._show_notes()
        self._update_model_box()
        self.rvc.update_weights()

    def _show_notes(self) -> None:
        """What cannot run here and why; not for the voices a Remote GPU computes while that
        is the compute device (their weights are the server's)."""
        remote = self._device_value == "remote"
        notes = [
            f"{VOICES[name].label}: {why}"
            for name, (ok, why) in self.availability.items()
            if not ok and not (remote and name in REMOTE_VOICES and voice_selectable(name)[0])
        ]
        self.unavailable.setText("\n".join(notes))
        self.unavailable.setVisible(bool(notes))

    def _on_voice(self) -> None:
        name = self.voice.currentData()
        self._show_voice(name)
        info = VOICES.get(name)
        if info is not None and info.neural:
            self.neuralShown.emit()  # chosen by the user now: worth importing torch for
        self.changed.emit({"voice": name})

    def _show_voice(self, name: str) -> None:
        info = VOICES.get(name)
        self.description.setText(info.description if info else "")
        neural = bool(info and info.neural)
        needs_ref = bool(info and info.needs_reference)
        label = info.label if info else name
        combos = (
            (self.backend, BACKEND_TIP),
            (self.device, DEVICE_TIP),
            (self.precision, PRECISION_TIP),
        )
        for w, tip in combos:
            w.setEnabled(neural)
            w.setToolTip(
                tip
                if neural
                else f"Only for neural voices; {label} runs on the CPU without a model."
            )
        self.compute_note.setText(
            ""
            if neural
            else f"Backend and device apply to neural voices only ({label} needs none)."
        )
        self.compute_note.setVisible(not neural)
        if not neural:
            self.provider.setText("CPU (built in)")
        elif not self.provider.text() or "built in" in self.provider.text():
            self.provider.setText("not loaded yet")
        tip = "" if needs_ref else f"{label} does not use a reference clip."
        self.reference.setToolTip(tip or "The voice you want to sound like.")
        self.rvc.setVisible(name == "rvc")
        self._show_remote()
        self._update_model_box()

    def _show_remote(self) -> None:
        remote, name = self._device_value == "remote", self.voice.currentData()
        self.remote.setVisible(remote and name in REMOTE_VOICES)
        if name in REMOTE_VOICES:
            self.remote.voice = name
        self.rvc.set_remote(remote)
        self._show_notes()

    # ---- compute devices ---------------------------------------------------------------------
    def _fill_devices(self) -> None:
        """Automatic and CPU always; CUDA/MPS once a probe found them; the saved choice always
        (marked when this machine lacks it), so a preset's value is never changed silently."""
        found = probed_devices()
        usable = (set(found) if found is not None else set(ALWAYS)) | {"remote"}
        self.device.blockSignals(True)
        self.device.clear()
        for label, value in DEVICES:
            if value in usable:
                self.device.addItem(label, value)
            elif value == self._device_value:
                why = "not found on this machine" if found is not None else "not checked yet"
                self.device.addItem(f"{label} ({why})", value)
                self.device.setItemData(
                    self.device.count() - 1,
                    f"{label} is {why}; loading the voice may fail or fall back to the CPU.",
                    TOOLTIP,
                )
        self.device.setCurrentIndex(max(0, self.device.findData(self._device_value)))
        self.device.blockSignals(False)

    def set_devices(self) -> None:
        """The probe finished (or a neural voice loaded): list what this machine has."""
        self._fill_devices()

    def _on_device(self) -> None:
        value = self.device.currentData()
        if value is not None and value != self._device_value:
            self._device_value = value
            self._show_remote()
            self._update_model_box()
            self.changed.emit({"device": value})

    def show_provider(self, provider: str) -> None:
        """Where the loaded neural voice actually runs, e.g. 'CUDA (onnxruntime, fp16)'."""
        if self.provider.text() != provider:  # called at 30 Hz: no relayout when unchanged
            self.provider.setText(provider)

    def show_loading(self, text: str) -> None:
        """A voice loads in the background ('' when done)."""
        self.loading_label.setText(text)
        self.loading_row.setVisible(bool(text))

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
            (self.precision, v.precision),
        ):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(data)))
            combo.blockSignals(False)
        if v.device != self._device_value or self.device.findData(v.device) < 0:
            self._device_value = v.device
            self._fill_devices()
        self._show_voice(v.voice)
        if self.reference.text() != v.reference:
            self.reference.setText(v.reference)
            self.reference.setCursorPosition(len(v.reference))
        self.clear.setEnabled(bool(v.reference))
        self.rvc.set_settings(s)
        self.remote.set_values(v.remote_address, v.remote_ca)

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
