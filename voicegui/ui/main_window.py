"""The main window: layout and wiring only; the panels and the controller do the work.

Docks (devices, voice, presets, controls) around the live graph, a transport bar (start/stop,
bypass) and a banner area for non-modal messages. Window geometry and dock layout are saved in
AppState together with the current settings and the last preset.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from voicegui import __version__, modelhub, paths
from voicegui.engine.audiofile import AudioFileError
from voicegui.presets import AppState, PresetStore
from voicegui.settings import Settings
from voicegui.ui.banner import BannerArea
from voicegui.ui.compute import probed_devices, set_probed
from voicegui.ui.controller import WAIT_KEY, Controller
from voicegui.ui.controls import ControlsPanel
from voicegui.ui.device_panel import DevicePanel
from voicegui.ui.graph import GraphPanel
from voicegui.ui.hotkeys import WindowHotkeys
from voicegui.ui.icon import app_icon
from voicegui.ui.models import ModelManager, download_summary
from voicegui.ui.presets_panel import PresetsPanel
from voicegui.ui.readouts import Readouts
from voicegui.ui.voice_panel import MODEL, VoicePanel
from voicegui.ui.workers import Task
from voicegui.voices.catalog import VOICES
from voicegui.voices.rvc.shared_weights import NAME as RVC_WEIGHTS

log = logging.getLogger(__name__)

START_KEY = "Space"
BYPASS_KEY = "B"
RECORD_KEY = "R"
MIN_SIZE = (1100, 700)


class DockScroll(QScrollArea):
    """Scrolls vertically only; never narrower than its panel plus a vertical scroll bar, so a
    short window gets a vertical scroll bar instead of clipped or sideways-scrolling controls."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        hint = super().minimumSizeHint()
        width = (
            self.widget().minimumSizeHint().width()
            + self.verticalScrollBar().sizeHint().width()
            + 2 * self.frameWidth()
        )
        return QSize(width, hint.height())


class MainWindow(QMainWindow):
    def __init__(
        self,
        controller: Controller,
        store: PresetStore | None = None,
        state: AppState | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.store = store or PresetStore()
        self.state = state or AppState()
        self.setWindowTitle(f"voicegui {__version__} — real-time voice changer")
        self.setWindowIcon(app_icon())
        self.setMinimumSize(*MIN_SIZE)
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )

        # ---- panels --------------------------------------------------------------------------
        self.devices = DevicePanel(lister=lambda rescan: controller.host.devices(rescan))
        self.voice = VoicePanel()
        self.controls = ControlsPanel()
        self.presets = PresetsPanel(self.store, lambda: self.controller.settings)
        self.graph = GraphPanel()
        self.readouts = Readouts()
        self.banners = BannerArea()
        self.models = ModelManager(self)
        self.download_box: QMessageBox | None = None  # the open download confirmation
        self._transfer = MODEL  # the model whose weights are being transferred
        self._probe: Task | None = None
        self.hotkeys = WindowHotkeys(self)  # global hotkeys: push-to-talk, mute, bypass, ...

        # ---- transport bar -------------------------------------------------------------------
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setAccessibleName("Start or stop the voice changer")
        self.start_button.setToolTip(f"Start or stop the voice changer ({START_KEY})")
        self.start_button.setMinimumWidth(110)
        self.bypass_button = QPushButton("Bypass")
        self.bypass_button.setCheckable(True)
        self.bypass_button.setAccessibleName("Bypass: hear your dry voice")
        self.bypass_button.setToolTip(
            f"Bypass: hear your own voice dry, delay-aligned, without stopping ({BYPASS_KEY})"
        )
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setAccessibleName("Record the voice to a file")
        self.record_button.setToolTip(
            f"Record the converted voice to a file in {paths.recordings_dir()} ({RECORD_KEY})"
        )
        self.record_button.setIcon(
            self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton)
        )
        self.record_label = QLabel()
        self.record_label.setAccessibleName("Recording time and size")
        self.state_label = QLabel()
        self.state_label.setAccessibleName("Engine state")
        bar = QToolBar("Transport")
        bar.setObjectName("transport")
        bar.setMovable(False)
        bar.addWidget(self.start_button)
        bar.addWidget(self.bypass_button)
        bar.addWidget(self.record_button)
        bar.addWidget(self.record_label)
        bar.addWidget(self.hotkeys.indicator)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addWidget(self.state_label)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

        # ---- central: banners + graph + readouts ---------------------------------------------
        central = QWidget()
        v = QVBoxLayout(central)
        v.setContentsMargins(4, 4, 4, 4)
        v.addWidget(self.banners)
        v.addWidget(self.graph, 1)
        v.addWidget(self.readouts)
        self.setCentralWidget(central)

        # ---- docks ---------------------------------------------------------------------------
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
            ("devices", "Devices", self.devices, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("voice", "Voice", self.voice, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("presets", "Presets", self.presets, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("controls", "Controls", self.controls, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{key}")
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            dock.setWidget(DockScroll(widget))
            if not widget.accessibleName():
                widget.setAccessibleName(f"{title} panel")
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.resizeDocks(
            [self.docks["devices"], self.docks["controls"]], [360, 400], Qt.Orientation.Horizontal
        )

        self._build_actions()
        self.setStatusBar(self.statusBar())
        self._shown: Settings | None = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(1000)
        self._save_timer.timeout.connect(self.save_state)
        self._wire()
        self._show_settings(controller.settings)
        self._on_running(controller.running)
        controller.sync_virtual_mic()  # made again, or one left behind by a crash cleared
        if controller.settings.voice.reference and controller.reference is not None:
            data, sr = controller.reference
            self.voice.show_reference(
                f"{Path(controller.settings.voice.reference).name}: {len(data) / sr:.1f} s, {sr} Hz"
            )

    # ---- actions and shortcuts ---------------------------------------------------------------
    def _build_actions(self) -> None:
        self.start_action = QAction("&Start / Stop", self)
        self.start_action.setShortcut(QKeySequence(START_KEY))
        self.start_action.triggered.connect(self._on_space)
        self.bypass_action = QAction("&Bypass", self)
        self.bypass_action.setShortcut(QKeySequence(BYPASS_KEY))
        self.bypass_action.triggered.connect(self.controller.toggle_bypass)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        save_action = QAction("&Save preset as…", self)
        save_action.setShortcut(QKeySequence.StandardKey.Save)
        save_action.triggered.connect(self.presets._ask_save_as)
        import_action = QAction("&Import preset…", self)
        import_action.triggered.connect(self.presets._ask_import)
        ref_action = QAction("Choose &reference clip…", self)
        ref_action.setShortcut(QKeySequence.StandardKey.Open)
        ref_action.triggered.connect(self.voice._browse)
        self.record_action = QAction("&Record", self)
        self.record_action.setShortcut(QKeySequence(RECORD_KEY))
        self.record_action.triggered.connect(self.toggle_record)
        self.record_dry_action = QAction("Record the &dry input too", self)
        self.record_dry_action.setCheckable(True)
        self.record_dry_action.toggled.connect(self._set_record_dry)
        self.record_flac_action = QAction("Record as &FLAC (smaller) instead of WAV", self)
        self.record_flac_action.setCheckable(True)
        self.record_flac_action.toggled.connect(self._set_record_flac)
        folder_choice = QAction("Recordings f&older…", self)
        folder_choice.triggered.connect(self.ask_recordings_folder)
        recordings_action = QAction("Open the recordings &folder", self)
        recordings_action.triggered.connect(self._open_recordings)
        for a in (self.start_action, self.bypass_action, self.record_action):
            self.addAction(a)  # window-wide shortcuts, also without the menu bar

        menu = self.menuBar().addMenu("&File")
        for a in (ref_action, save_action, import_action):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(quit_action)
        audio = self.menuBar().addMenu("&Audio")
        audio.addAction(self.start_action)
        audio.addAction(self.bypass_action)
        for a in (self.hotkeys.mute_action, self.hotkeys.ptt_action, self.hotkeys.dialog_action):
            audio.addAction(a)
        audio.addSeparator()
        for a in (self.record_action, self.record_dry_action, self.record_flac_action,
                  folder_choice, recordings_action):  # fmt: skip
            audio.addAction(a)
        models = self.menuBar().addMenu("Mod&els")
        self.download_action = QAction("&Download Seed-VC…", self)
        self.download_action.triggered.connect(self.ask_download)
        self.import_action = QAction("&Import Seed-VC from a folder…", self)
        self.import_action.triggered.connect(self.ask_import)
        self.remove_action = QAction("&Remove Seed-VC…", self)
        self.remove_action.triggered.connect(self.ask_remove)
        folder_action = QAction("Open the &models folder", self)
        folder_action.triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.models_dir())))
        )
        for a in (self.download_action, self.import_action, self.remove_action):
            models.addAction(a)
        models.addSeparator()
        models.addAction(folder_action)
        models.aboutToShow.connect(self._update_model_actions)
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        logs = QAction("Open the &log folder", self)
        logs.triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.log_dir())))
        )
        about = QAction("&About voicegui", self)
        about.triggered.connect(self._about)
        help_menu.addAction(logs)
        help_menu.addAction(about)

    def _on_space(self) -> None:
        # Space is also how a keyboard user presses a focused button or opens a combo box:
        # keep that working and only toggle the engine from anywhere else
        focus = QApplication.focusWidget()
        if isinstance(focus, QAbstractButton) and focus is not self.start_button:
            focus.animateClick()
            return
        if isinstance(focus, QComboBox):
            focus.showPopup()
            return
        self.controller.toggle()

    def _on_start_clicked(self) -> None:
        self.controller.toggle()
        self._on_running(self.controller.running)  # a failed start must not leave it pressed

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About voicegui",
            f"<b>voicegui {__version__}</b><br>Real-time voice changer.<br>"
            f"Settings: {paths.config_dir()}<br>Logs: {paths.log_dir()}",
        )

    # ---- wiring ------------------------------------------------------------------------------
    def _wire(self) -> None:
        c = self.controller
        self.start_button.clicked.connect(self._on_start_clicked)
        self.bypass_button.toggled.connect(c.set_bypass)
        self.record_button.clicked.connect(self.toggle_record)
        c.recordingChanged.connect(self._on_recording)
        self.controls.changed.connect(lambda part, name, value: c.change(**{part: {name: value}}))
        self.devices.changed.connect(lambda d: c.change(audio=d))
        self.devices.refreshRequested.connect(self.refresh_devices)
        self.voice.changed.connect(lambda d: c.change(voice=d))
        self.voice.referenceChosen.connect(self.use_reference)
        self.voice.referenceCleared.connect(self._clear_reference)
        self.voice.recordRequested.connect(self.record_reference)
        self.presets.loadRequested.connect(c.load_preset)
        self.presets.notice.connect(self.show_notice)
        self.presets.currentChanged.connect(lambda _: self._save_timer.start())
        c.settingsChanged.connect(self._show_settings)
        c.settingsChanged.connect(lambda _: self._save_timer.start())
        c.metricsUpdated.connect(self._on_metrics)
        c.levelsUpdated.connect(self.devices.set_level)
        c.meterStatus.connect(self.devices.show_meter_status)
        c.virtualMicChanged.connect(self.devices.show_virtual_mic)
        c.runningChanged.connect(self._on_running)
        c.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 8000))
        c.notice.connect(self.show_notice)
        c.engineLost.connect(self._on_lost)
        c.referenceChanged.connect(self._on_reference_changed)
        c.voiceLoading.connect(self._on_voice_loading)
        c.voiceReady.connect(self._on_voice_ready)
        self.voice.downloadRequested.connect(self.ask_download)
        self.voice.importRequested.connect(self.ask_import)
        self.voice.cancelModelRequested.connect(self.cancel_model)
        self.voice.neuralShown.connect(self.probe_devices)
        rvc = self.voice.rvc
        rvc.downloadRequested.connect(lambda: self.ask_download(RVC_WEIGHTS))
        rvc.importWeightsRequested.connect(lambda: self.ask_import(RVC_WEIGHTS))
        rvc.cancelModelRequested.connect(self.cancel_model)
        rvc.notice.connect(self.show_notice)
        rvc.libraryChanged.connect(self.controller.refresh_voice)
        m = self.models
        m.started.connect(lambda name, what: self._model_view(name).show_model_started(what))
        m.progress.connect(lambda *a: self._model_view(self._transfer).show_model_progress(*a))
        m.finished.connect(self._on_model_finished)
        m.changed.connect(self._on_models_changed)

    def show_notice(self, kind: str, text: str, key: str = "") -> None:
        self.banners.show_message(kind, text, key or None)

    # ---- controller -> widgets ---------------------------------------------------------------
    def _show_settings(self, s: Settings) -> None:
        old, self._shown = self._shown, s
        if old is None or old.audio != s.audio:
            self.devices.set_audio(s.audio)
        if old is None or old.voice != s.voice:
            self.voice.set_settings(s)
        if old is None or old.engine != s.engine or old.voice != s.voice:
            self.controls.set_settings(s)
        eng = self.controller.engine
        if eng is not None and eng.voice is not None and eng.voice.name == s.voice.voice:
            self.banners.dismiss(WAIT_KEY)  # back to the voice that runs: nothing waits
        self.bypass_button.blockSignals(True)
        self.bypass_button.setChecked(s.engine.bypass)
        self.bypass_button.blockSignals(False)
        self._update_state_label()

    def _on_metrics(self, snap) -> None:
        self.graph.update_metrics(self.controller.metrics, snap)
        self.readouts.show_snapshot(snap)
        info = VOICES.get(snap.voice)
        if info is not None and info.neural and snap.voice == self.controller.settings.voice.voice:
            self.voice.show_provider(snap.provider)  # the engine's word on where it runs

    def _on_running(self, running: bool) -> None:
        self.start_button.blockSignals(True)
        self.start_button.setChecked(running)
        self.start_button.blockSignals(False)
        pending = not running and self.controller.start_pending
        if pending:  # waiting for a neural voice: pressing again cancels the start
            self.start_button.setChecked(True)
        self.start_button.setText("Stop" if running else "Cancel" if pending else "Start")
        running = running or pending
        icon = QStyle.StandardPixmap.SP_MediaStop if running else QStyle.StandardPixmap.SP_MediaPlay
        self.start_button.setIcon(self.style().standardIcon(icon))
        self.devices.set_running(running)
        self.voice.set_running(running)
        self.record_button.setEnabled(self.controller.running)
        self.record_action.setEnabled(self.controller.running)
        self._show_recording_button()
        if running:
            self.banners.dismiss("engine")
            self.graph.clear()
        else:
            self.readouts.show_stopped("stopped")
        self._update_state_label()

    def _update_state_label(self) -> None:
        c = self.controller
        if c.running and c.engine is not None:
            text = f"Running · {c.engine.sample_rate} Hz"
            if c.settings.engine.bypass:
                text += " · BYPASS (dry)"
        elif c.start_pending:
            text = "Starting (loading the voice)…"
        else:
            text = "Stopped"
        if c.loading and c.running:
            text += " · loading the new voice…"
        self.state_label.setText(text)

    # ---- recording the voice -----------------------------------------------------------------
    def toggle_record(self) -> bool:
        """Start or stop recording the voice (named by date and the current preset)."""
        self.controller.toggle_record(self.presets.current)
        self._show_recording_button()
        return self.controller.recording

    def _show_recording_button(self) -> None:
        recording = self.controller.recording
        self.record_button.blockSignals(True)
        self.record_button.setChecked(recording)
        self.record_button.blockSignals(False)
        self.record_button.setText("Stop recording" if recording else "Record")

    def _on_recording(self, state: dict) -> None:
        self._show_recording_button()
        dropped = state.get("dropped", 0)
        lost = (
            f" · {dropped / state.get('sample_rate', 48000):.1f} s lost (the disk was too slow)"
            if dropped
            else ""
        )
        if state.get("running"):
            self.banners.dismiss("recording")
            self.record_label.setText(
                f"● REC {format_elapsed(state.get('elapsed', 0.0))} · "
                f"{format_size(state.get('bytes', 0))}{lost}"
            )
        elif state.get("path"):
            name = Path(state["path"]).name
            self.record_label.setText(
                f"Saved {name} ({format_elapsed(state.get('seconds', 0.0))}, "
                f"{format_size(state.get('bytes', 0))}){lost}"
            )
            self.record_label.setToolTip(state["path"])
        else:
            self.record_label.setText("")

    def _set_record_dry(self, on: bool) -> None:
        self.controller.record_dry = bool(on)
        self._save_timer.start()

    def _set_record_flac(self, on: bool) -> None:
        self.controller.record_format = "flac" if on else "wav"
        self._save_timer.start()

    def recordings_folder(self) -> Path:
        return Path(self.controller.record_folder or paths.recordings_dir())

    def set_recordings_folder(self, folder: str | Path) -> None:
        """Where the next recordings go ('': the music folder)."""
        changed = self.controller.record_folder != str(folder or "")
        self.controller.record_folder = str(folder or "")
        self.record_button.setToolTip(
            f"Record the converted voice to a file in {self.recordings_folder()} ({RECORD_KEY})"
        )
        if changed:
            self._save_timer.start()

    def ask_recordings_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for recordings", str(self.recordings_folder())
        )
        if folder:
            self.set_recordings_folder(folder)

    def _open_recordings(self) -> None:
        folder = self.recordings_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_notice("error", f"Cannot open {folder}: {exc}", "recording")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ---- neural voices -----------------------------------------------------------------------
    def _on_voice_loading(self, text: str) -> None:
        self.voice.show_loading(text)
        self._on_running(self.controller.running)
        if text:
            self.statusBar().showMessage(text)

    def _on_voice_ready(self, name: str, provider: str) -> None:
        for key in ("voice", WAIT_KEY):  # an older failure, or a note that it needed something
            self.banners.dismiss(key)
        self.voice.show_provider(provider)
        self.voice.set_devices()  # the load probed the devices with torch
        self._on_running(self.controller.running)

    def probe_devices(self) -> None:
        """Which compute devices exist (imports torch, so in a worker); the combo follows."""
        if probed_devices() is not None:
            self.voice.set_devices()
            return
        if self._probe is not None:
            return
        host = self.controller.host
        self._probe = Task(
            lambda _task: host.probe_devices(), name="voicegui-device-probe", parent=self
        )  # the audio host imports torch for this, never this process
        self._probe.succeeded.connect(lambda found: (set_probed(found), self.voice.set_devices()))
        self._probe.finished.connect(self._probe_done)
        self._probe.start()

    def _probe_done(self) -> None:
        task, self._probe = self._probe, None
        if task is not None:
            task.deleteLater()

    # ---- model weights -----------------------------------------------------------------------
    def _model_view(self, name: str):
        """The box that shows a transfer of ``name``'s weights (Seed-VC's, or the RVC library's)."""
        return self.voice.rvc if name == RVC_WEIGHTS else self.voice

    def _label(self, name: str) -> str:
        return "Seed-VC" if name == MODEL else self.models.label(name)

    def _update_model_actions(self) -> None:
        installed = modelhub.installed(MODEL)
        busy = self.models.busy
        self.download_action.setEnabled(not busy and not installed)
        self.import_action.setEnabled(not busy)
        self.remove_action.setEnabled(not busy and modelhub.model_dir(MODEL).exists())

    def download_confirmation(self, name: str = MODEL) -> QMessageBox:
        """The question asked before any download: what, how big, which licence, where to."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(f"Download {self._label(name)}")
        box.setTextFormat(Qt.TextFormat.RichText)
        try:
            summary = download_summary(name)
        except modelhub.ModelError as exc:
            summary = f"The model catalog cannot be read: {exc}"
        box.setText(summary)
        box.setInformativeText("Download now? You can cancel while it runs.")
        self.download_yes = box.addButton("Download", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box

    def ask_download(self, name: str = MODEL) -> None:
        """Ask first (non-modal for the rest of the app); download only on 'Download'."""
        if self.models.busy:
            self.show_notice("info", "A model transfer is already running.", "models")
            return
        if self.download_box is not None:
            self.download_box.raise_()
            return
        box = self.download_confirmation(name)
        yes = self.download_yes

        def answered(_result: int) -> None:
            self.download_box = None
            box.deleteLater()
            if box.clickedButton() is yes:
                self.download_model(name)

        box.finished.connect(answered)
        self.download_box = box
        box.open()

    def download_model(self, name: str = MODEL) -> bool:
        """Start the download of ``name``'s weights (the user confirmed)."""
        self._transfer = name
        if not self.models.download(name):
            self.show_notice("info", "A model transfer is already running.", "models")
            return False
        self.banners.dismiss("models")
        return True

    def ask_import(self, name: str = MODEL) -> None:
        folder = QFileDialog.getExistingDirectory(
            self,
            f"Folder with the {self._label(name)} files (searched including subfolders)",
        )
        if folder:
            self.import_model(folder, name)

    def import_model(self, folder: str | Path, name: str = MODEL) -> bool:
        """Import ``name``'s weights from ``folder`` in the background."""
        self._transfer = name
        if not self.models.import_from(name, folder):
            self.show_notice("info", "A model transfer is already running.", "models")
            return False
        self.banners.dismiss("models")
        return True

    def cancel_model(self) -> None:
        self._model_view(self._transfer).show_model_cancelling()
        self.models.cancel()

    def _on_model_finished(self, name: str, outcome: str, text: str) -> None:
        self.voice.refresh_availability()
        view = self._model_view(name)
        if outcome == "ok":
            view.show_model_idle("")
            self.banners.show_message(
                "info", f"{text}. It can be chosen as the voice now.", "models"
            )
            self.statusBar().showMessage(text, 8000)
        elif outcome == "cancelled":
            view.show_model_idle(text)
            self.statusBar().showMessage(text, 8000)
        else:
            view.show_model_idle("")
            what = "download" if "download" in text.lower() else "import"
            self.banners.show_message(
                "error", f"{self._label(name)} {what} failed: {text}", "models"
            )

    def _on_models_changed(self, name: str) -> None:
        self.voice.refresh_availability()
        self._update_model_actions()
        self.controller.refresh_voice()  # Seed-VC chosen while it was missing: load it now

    def ask_remove(self) -> None:
        c = self.controller
        if c.running and c.settings.voice.voice == MODEL or c.loading:
            self.show_notice(
                "info",
                "Stop the voice changer (or choose another voice) before removing Seed-VC.",
                "models",
            )
            return
        answer = QMessageBox.question(
            self,
            "Remove Seed-VC",
            f"Delete the Seed-VC weights from {modelhub.model_dir(MODEL)}?\n"
            "You can download or import them again later.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_model()

    def remove_model(self) -> None:
        self.controller.forget_voice(MODEL)
        try:
            self.models.remove(MODEL)
        except (OSError, modelhub.ModelError) as exc:
            self.show_notice("error", f"Removing Seed-VC failed: {exc}", "models")
            return
        self.statusBar().showMessage("Seed-VC removed", 8000)

    def _on_lost(self, reason: str) -> None:
        self.readouts.show_stopped(reason)
        self.banners.show_message(
            "error",
            f"Audio stopped: {reason}",
            "engine",
            action_text="Restart",
            action=self.controller.start,
        )

    def _on_reference_changed(self, path: str, description: str) -> None:
        if description:
            self.voice.show_reference(description)
        elif not path:
            self.voice.show_reference("")

    # ---- reference clip ----------------------------------------------------------------------
    def use_reference(self, path: str | Path) -> bool:
        """Validate and use an audio file as the reference; errors go to the panel and a banner."""
        try:
            description = self.controller.set_reference(path)
        except AudioFileError as exc:
            self.voice.show_reference(str(exc), error=True)
            self.banners.show_message("error", f"Reference clip not used: {exc}", "reference")
            return False
        self.voice.show_reference(description)
        self.banners.dismiss("reference")
        self.statusBar().showMessage(f"Reference clip: {description}", 8000)
        return True

    def _clear_reference(self) -> None:
        self.controller.change(voice={"reference": ""})
        self.voice.show_reference("")

    def record_reference(self) -> None:
        from voicegui.ui.record_dialog import RecordDialog

        if self.controller.running:
            self.show_notice("info", "Stop the voice changer to record a reference.", "record")
            return
        self.controller.pause_meter(True)
        dialog = RecordDialog(self.controller.settings.audio, self.controller.host, parent=self)
        dialog.recorded.connect(self.use_reference)
        dialog.finished.connect(lambda _: self.controller.pause_meter(False))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.record_dialog = dialog

    # ---- devices -----------------------------------------------------------------------------
    def refresh_devices(self) -> None:
        if self.controller.running:
            return
        self.controller.close_meter()
        self.devices.rescan(reinitialize=True)
        self.controller.open_meter()
        self.statusBar().showMessage("Device list refreshed", 5000)

    # ---- drag and drop -----------------------------------------------------------------------
    @staticmethod
    def _dropped_file(mime) -> Path | None:
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                return Path(url.toLocalFile())
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if self._dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        path = self._dropped_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        if path.suffix.lower() in (".pth", ".onnx", ".index"):  # RVC voices: into the library
            self.voice.rvc.import_files([Path(u.toLocalFile()) for u in event.mimeData().urls()])
        elif path.suffix.lower() == ".json":
            self.presets.import_file(path)  # a dropped preset is imported, not read as audio
        else:
            self.use_reference(path)

    # ---- state -------------------------------------------------------------------------------
    def restore_state(self, data: dict) -> None:
        """Window geometry, dock layout and the last preset selection from AppState data."""
        geometry = data.get("geometry")
        restored = False
        if isinstance(geometry, str):
            restored = self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        if not restored:
            screen = self.screen().availableGeometry() if self.screen() else None
            w, h = 1440, 900
            if screen is not None:
                w, h = min(w, int(screen.width() * 0.92)), min(h, int(screen.height() * 0.92))
            self.resize(max(w, MIN_SIZE[0]), max(h, MIN_SIZE[1]))
        window_state = data.get("window_state")
        if isinstance(window_state, str):
            self.restoreState(QByteArray.fromBase64(window_state.encode("ascii")))
        rec = data.get("recording")
        if isinstance(rec, dict):
            self.record_dry_action.setChecked(bool(rec.get("dry", False)))
            self.record_flac_action.setChecked(rec.get("format") == "flac")
            if isinstance(rec.get("folder"), str):
                self.set_recordings_folder(rec["folder"])
        last = data.get("last_preset")
        if isinstance(last, str) and last:
            self.presets.current = last
            self.presets.select(last)
        for note in self.hotkeys.restore(data.get("hotkeys")):
            self.show_notice("warning", note, f"hotkeys:{note}")

    def state_data(self) -> dict:
        return {
            "settings": self.controller.settings.to_dict(),
            "last_preset": self.presets.current,
            "recording": {
                "folder": self.controller.record_folder,
                "dry": self.controller.record_dry,
                "format": self.controller.record_format,
            },
            "hotkeys": self.hotkeys.to_dict(),
            "geometry": bytes(self.saveGeometry().toBase64()).decode("ascii"),
            "window_state": bytes(self.saveState().toBase64()).decode("ascii"),
        }

    def request_save(self) -> None:
        """Save the app state soon (changes that come in bursts are saved once)."""
        self._save_timer.start()

    def save_state(self) -> None:
        try:
            self.state.update(**self.state_data())
        except OSError as exc:
            log.warning("could not save the app state: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self._save_timer.stop()
        self.save_state()
        self.models.cancel()
        self.hotkeys.close()
        self.controller.shutdown()
        super().closeEvent(event)


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} kB"
    if size < 1024**3:
        return f"{size / 1024**2:.1f} MB"
    return f"{size / 1024**3:.2f} GB"
