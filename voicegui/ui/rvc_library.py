"""The RVC voice library, shown in the voice panel while the RVC voice is chosen.

A list of the voices in the library (name, version, rate, f0, size, index, default pitch; a
damaged file is listed with what is wrong with it). Voices come in by drag-and-drop (a ``.pth``
or ``.onnx`` with its ``.index``, or an ``.index`` alone for the selected voice) or *Import…*;
the copy and its checks run in the background. Clicking a voice uses it: the voice settings get
its model, its index and its default pitch. *Remove…* asks first. Above the list, the state of
the shared weights every RVC voice needs, with *Download…* and *Import from folder…* (the main
window runs those with the same machinery as Seed-VC's weights), and the pitch estimator.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from voicegui.settings import Settings
from voicegui.ui.models import human_size
from voicegui.ui.weights_box import WeightsBox, WeightsTexts
from voicegui.ui.workers import Task
from voicegui.voices.rvc import library, shared_weights
from voicegui.voices.rvc.library import VoiceModel

log = logging.getLogger(__name__)

ROLE = Qt.ItemDataRole.UserRole  # an item's library name
COLUMNS = ("Name", "Version", "Rate", "F0", "Size", "Index", "Pitch")
NAME, VERSION, RATE, F0, SIZE, INDEX, PITCH = range(len(COLUMNS))
FILE_FILTER = "RVC voices (*.pth *.onnx *.index);;All files (*)"
F0_LABELS = (
    ("RMVPE (best)", "rmvpe"),
    ("FCPE (faster)", "fcpe"),
    ("YIN (cheapest, CPU)", "yin"),
)
F0_TIP = (
    "How the pitch of your voice is measured. RMVPE is the most accurate; FCPE is several "
    "times faster on the CPU; YIN needs no model and costs almost nothing, for slow CPUs "
    "(it is less sure of breathy or noisy voices). Changing it loads the voice again in the "
    "background."
)

RVC_WEIGHTS = WeightsTexts(
    name="RVC shared weights",
    download="Download…",
    download_name="Download the RVC shared weights",
    download_tip="Download the content encoder (ContentVec) and the RMVPE pitch model that every "
    "RVC voice needs. You are shown the size and licence first.",
    import_name="Import the RVC shared weights",
    import_tip="For offline machines: take hubert_base and rmvpe from a folder, such as the "
    "assets/ folder of an RVC installation.",
    progress_name="RVC weights transfer progress",
    cancel_name="Cancel the RVC weights transfer",
    state_name="RVC shared weights state",
)


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setEnabled(False)
    return label


class RvcLibraryPanel(QWidget):
    changed = Signal(dict)  # VoiceSettings field -> value (model, index, pitch, f0_method)
    downloadRequested = Signal()  # the shared weights: download (the window asks first)
    importWeightsRequested = Signal()  # ... or import them from a folder
    cancelModelRequested = Signal()
    libraryChanged = Signal()  # voices were imported or removed
    notice = Signal(str, str, str)  # kind, text, key (the window's banners)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("RVC voice library")
        self.setAcceptDrops(True)
        self.models: dict[str, VoiceModel] = {}
        self.loaded = False  # the library is read when the panel is first shown
        self._current = ""  # VoiceSettings.model
        self._pitch_value = 0.0
        self.task: Task | None = None
        self.remove_box: QMessageBox | None = None
        self.remote = False  # computed by a Remote GPU server (set_remote)
        self._build_weights_box()

        self.f0 = QComboBox()
        for label, value in F0_LABELS:
            self.f0.addItem(label, value)
        self.f0.setAccessibleName("Pitch estimator")
        self.f0.setToolTip(F0_TIP)

        self.tree = QTreeWidget()
        self.tree.setAccessibleName("RVC voices")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setMinimumHeight(140)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setToolTip(
            "Click a voice to use it. Drop .pth/.onnx files (with their .index) here to add "
            "them; drop an .index alone to give the selected voice its index."
        )
        self.empty = _note(
            "No voices yet: drop a .pth or .onnx voice model (and its .index) here, or use Import…"
        )

        self.import_button = QPushButton("Import…")
        self.import_button.setIcon(
            self.style().standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton)
        )
        self.import_button.setAccessibleName("Import RVC voices")
        self.import_button.setToolTip(
            "Copy .pth or .onnx voice models, with their .index files, into your voice library."
        )
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setAccessibleName("Remove the selected RVC voice")
        self.pitch = QDoubleSpinBox()
        self.pitch.setRange(*library.PITCH_RANGE)
        self.pitch.setSingleStep(1.0)
        self.pitch.setDecimals(2)
        self.pitch.setSuffix(" st")
        self.pitch.setKeyboardTracking(False)
        self.pitch.setAccessibleName("Default pitch of the selected voice")
        self.pitch.setToolTip(
            "The pitch shift this voice starts with when you choose it (e.g. +12 for a male "
            "speaker through a female voice). Saved with the voice."
        )
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setAccessibleName("Voice import progress")
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Voice library state")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        label = QLabel("Pitch &estimator")
        label.setBuddy(self.f0)
        form.addRow(label, self.f0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        pitch_row = QHBoxLayout()
        pitch_label = QLabel("&Default pitch")
        pitch_label.setBuddy(self.pitch)
        pitch_row.addWidget(pitch_label)
        pitch_row.addWidget(self.pitch)
        pitch_row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.weights_box)
        lay.addLayout(form)
        lay.addWidget(self.tree)
        lay.addWidget(self.empty)
        lay.addLayout(buttons)
        lay.addLayout(pitch_row)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)

        self.f0.currentIndexChanged.connect(
            lambda: self.changed.emit({"f0_method": self.f0.currentData()})
        )
        self.tree.itemClicked.connect(lambda item, _col: self.use(item.data(NAME, ROLE)))
        self.tree.itemActivated.connect(lambda item, _col: self.use(item.data(NAME, ROLE)))
        self.tree.currentItemChanged.connect(self._on_current)
        self.import_button.clicked.connect(self._browse)
        self.remove_button.clicked.connect(self.ask_remove)
        self.pitch.valueChanged.connect(self._on_pitch)
        self.show_model_idle()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if not self.loaded:
            self.refresh()  # not at start-up: only once someone looks at the library
        super().showEvent(event)

    # ---- shared weights --------------------------------------------------------------------------
    def _build_weights_box(self) -> None:
        self.weights_box = WeightsBox(RVC_WEIGHTS)
        # the names the window and the tests reach the box's parts by
        self.weights_state = self.weights_box.state
        self.download_button = self.weights_box.download_button
        self.import_weights_button = self.weights_box.import_button
        self.model_progress = self.weights_box.progress
        self.model_progress_label = self.weights_box.progress_label
        self.model_cancel = self.weights_box.cancel
        self.weights_box.downloadRequested.connect(self.downloadRequested)
        self.weights_box.importRequested.connect(self.importWeightsRequested)
        self.weights_box.cancelRequested.connect(self.cancelModelRequested)

    @property
    def model_busy(self) -> bool:
        return self.weights_box.busy

    def set_remote(self, remote: bool) -> None:
        """A Remote GPU server computes the voice: the shared weights are the server's."""
        self.remote = remote
        self.update_weights()

    def update_weights(self) -> None:
        lacking = [] if self.remote else shared_weights.missing()
        if lacking:
            self.weights_state.setText(
                "RVC voices need shared weights that are not installed: "
                + " and ".join(lacking)
                + ". Download them (about 370 MB), or import them from an RVC installation's "
                "assets/ folder."
            )
        else:
            self.weights_state.setText("The RVC shared weights are installed.")
        self.weights_box.setVisible(bool(lacking) or self.model_busy)

    def show_model_idle(self, text: str = "") -> None:
        self.weights_box.show_idle(text)
        self.update_weights()

    def show_model_started(self, what: str) -> None:
        self.weights_box.show_started(what)
        self.update_weights()

    def show_model_progress(self, label: str, done: int, total: int) -> None:
        self.weights_box.show_progress(label, done, total)

    def show_model_cancelling(self) -> None:
        self.weights_box.show_cancelling()

    # ---- the list ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the library again (headers only) and show it."""
        selected = self.selected()
        self.loaded = True
        try:
            models = library.list_models()
        except OSError as exc:
            models = []
            self.show_status(f"The voice library cannot be read: {exc}", error=True)
        self.models = {m.name: m for m in models}
        self.tree.blockSignals(True)
        self.tree.clear()
        for m in models:
            self.tree.addTopLevelItem(self._item(m))
        self.tree.blockSignals(False)
        self.empty.setVisible(not models)
        self._mark_current()
        self.select(selected or self._current)
        self.update_weights()

    def _item(self, m: VoiceModel) -> QTreeWidgetItem:
        item = QTreeWidgetItem()
        item.setData(NAME, ROLE, m.name)
        item.setText(NAME, m.name)
        info = m.info
        if m.error or info is None:
            item.setIcon(
                NAME, self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            )
            item.setText(VERSION, "damaged" if m.model else "—")
            item.setText(SIZE, human_size(m.size) if m.size else "")
            item.setText(INDEX, m.error)
            item.setToolTip(NAME, f"{m.name}: {m.error}\n{m.folder}")
            for col in range(len(COLUMNS)):
                item.setToolTip(col, item.toolTip(NAME))
            return item
        item.setText(VERSION, f"{info.version} ({info.feature_dim}-d)")
        item.setText(RATE, f"{info.sample_rate / 1000:g} kHz")
        item.setText(F0, "yes" if info.f0 else "no")
        item.setText(SIZE, human_size(m.size))
        if m.index_info is not None:
            item.setText(INDEX, f"yes ({m.index_info.vectors} vectors)")
        else:
            item.setText(INDEX, "no")
        item.setText(PITCH, f"{m.pitch:+g} st")
        lines = [f"{m.name}: {info.kind} voice, {info.summary()}", f"{m.model}"]
        if m.index is not None:
            lines.append(f"index: {m.index.name}")
        lines += [f"{k}: {v}" for k, v in info.details]
        lines += [f"Note: {w}" for w in info.warnings]
        tip = "\n".join(lines)
        for col in range(len(COLUMNS)):
            item.setToolTip(col, tip)
        if info.warnings:
            item.setIcon(
                NAME, self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
            )
        return item

    def items(self) -> dict[str, QTreeWidgetItem]:
        return {
            self.tree.topLevelItem(i).data(NAME, ROLE): self.tree.topLevelItem(i)
            for i in range(self.tree.topLevelItemCount())
        }

    def selected(self) -> str:
        item = self.tree.currentItem()
        return item.data(NAME, ROLE) if item is not None else ""

    def select(self, name: str) -> None:
        item = self.items().get(name)
        self.tree.setCurrentItem(item)
        self._on_current()

    def _mark_current(self) -> None:
        for name, item in self.items().items():
            font = QFont(item.font(NAME))
            font.setBold(name == self._current)
            item.setFont(NAME, font)
        if (
            self.loaded
            and self._current
            and self._current not in self.models
            and not _is_path(self._current)
        ):
            self.show_status(
                f"The chosen voice '{self._current}' is not in the library.", error=True
            )

    def _on_current(self, *_args) -> None:
        m = self.models.get(self.selected())
        usable = m is not None and m.ok
        self.remove_button.setEnabled(m is not None and not self.busy)
        self.pitch.setEnabled(usable)
        self.pitch.blockSignals(True)
        self.pitch.setValue(m.pitch if m is not None else 0.0)
        self.pitch.blockSignals(False)
        if m is not None and m.error:
            self.show_status(f"'{m.name}' cannot be used: {m.error}", error=True)

    # ---- choosing a voice --------------------------------------------------------------------
    def use(self, name: str) -> bool:
        """Make ``name`` the voice: its model, its index and its default pitch."""
        m = self.models.get(name)
        if m is None:
            return False
        if not m.ok:
            self.show_status(f"'{name}' cannot be used: {m.error}", error=True)
            return False
        self.select(name)
        self._current = name
        self._mark_current()
        self.show_status(f"Using '{name}' ({m.info.summary() if m.info else ''}).")
        self.changed.emit(
            {"model": name, "index": str(m.index) if m.index else "", "pitch": m.pitch}
        )
        return True

    def _on_pitch(self, value: float) -> None:
        name = self.selected()
        if not name:
            return
        try:
            m = library.set_default_pitch(name, float(value))
        except library.LibraryError as exc:
            self.show_status(str(exc), error=True)
            return
        self.models[name] = m
        item = self.items().get(name)
        if item is not None:
            item.setText(PITCH, f"{m.pitch:+g} st")

    # ---- import --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.task is not None

    def _browse(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import RVC voices (models with their .index files)", "", FILE_FILTER
        )
        if files:
            self.import_files(files)

    def import_files(self, files: list[str | Path]) -> bool:
        """Import dropped or chosen files in the background: each model with the index whose
        name mentions it (or the only index); an index alone goes to the selected voice."""
        if self.busy:
            self.show_status("An import is already running.", error=True)
            return False
        models, indexes, others = library.split_dropped(files)
        if others:
            self.show_status(
                "Not an RVC voice file (.pth, .onnx or .index): "
                + ", ".join(p.name for p in others),
                error=True,
            )
        if not models and not indexes:
            return False
        target = self.selected()
        if not models and (not target or target not in self.models):
            self.show_status("Select the voice this index belongs to first.", error=True)
            return False
        jobs = _pair(models, indexes)

        def work(task: Task) -> tuple[list[str], list[str]]:
            if not models:
                library.set_index(target, indexes[0], progress=task.report)
                return [target], []
            done, failures = [], []
            for model, index in jobs:
                try:
                    done.append(library.import_model(model, index, progress=task.report).name)
                except library.LibraryError as exc:
                    failures.append(str(exc))
            if failures and not done:
                raise library.LibraryError("; ".join(failures))
            return done, failures

        self.task = Task(work, name="voicegui-rvc-import", parent=self)
        self.task.progress.connect(self._on_progress)
        self.task.succeeded.connect(self._on_imported)
        self.task.failed.connect(lambda message, _exc: self._on_import_failed(message))
        self.task.finished.connect(self._on_import_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.import_button.setEnabled(False)
        self.remove_button.setEnabled(False)
        what = ", ".join(p.name for p in models or indexes)
        self.show_status(f"Importing {what}…")
        self.task.start()
        return True

    def _on_progress(self, label: str, done: int, total: int) -> None:
        if total <= 0:
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(min(1000, round(1000 * done / total)))
        self.status.setText(f"{label}: {done / 1e6:.1f} / {total / 1e6:.1f} MB")

    def _on_imported(self, result: tuple[list[str], list[str]]) -> None:
        names, failures = result
        self.refresh()
        text = "Imported " + ", ".join(f"'{n}'" for n in names) + "."
        if failures:
            text += " Not imported: " + "; ".join(failures)
            self.notice.emit("error", "Not imported: " + "; ".join(failures), "rvc-library")
        self.show_status(text, error=bool(failures))
        if names:
            self.select(names[-1])
            if not self._current or self._current not in self.models:
                self.use(names[-1])  # the first voice: ready to use
            elif names[-1] == self._current:
                self.use(names[-1])  # its index changed
        self.libraryChanged.emit()

    def _on_import_failed(self, message: str) -> None:
        self.show_status(message, error=True)
        self.notice.emit("error", f"Voice not imported: {message}", "rvc-library")

    def _on_import_finished(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        self.progress.hide()
        self.import_button.setEnabled(True)
        self._on_current()

    # ---- removal -------------------------------------------------------------------------------
    def ask_remove(self) -> None:
        """Ask (without blocking the app) before deleting the selected voice."""
        name = self.selected()
        m = self.models.get(name)
        if m is None or self.remove_box is not None:
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Remove voice")
        box.setText(f"Delete the voice '{name}' and its files ({human_size(m.size)})?")
        box.setInformativeText(f"From {m.folder}. This cannot be undone.")
        yes = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.remove_yes = yes

        def answered(_result: int) -> None:
            self.remove_box = None
            box.deleteLater()
            if box.clickedButton() is yes:
                self.remove(name)

        box.finished.connect(answered)
        self.remove_box = box
        box.open()

    def remove(self, name: str) -> bool:
        try:
            library.remove(name)
        except library.LibraryError as exc:
            self.show_status(str(exc), error=True)
            return False
        log.info("removed RVC voice %s", name)
        self.show_status(f"Removed '{name}'.")
        if name == self._current:
            self._current = ""
            self.changed.emit({"model": "", "index": ""})
        self.refresh()
        self.libraryChanged.emit()
        return True

    # ---- drag and drop -------------------------------------------------------------------------
    @staticmethod
    def _dropped(mime) -> list[Path]:
        if mime is None or not mime.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        models, indexes, _ = library.split_dropped(self._dropped(event.mimeData()))
        if models or indexes:
            event.acceptProposedAction()
        else:
            event.ignore()  # audio files go on to the window (reference clips)

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        files = self._dropped(event.mimeData())
        models, indexes, _ = library.split_dropped(files)
        if not models and not indexes:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_files(files)

    # ---- settings -> widgets ---------------------------------------------------------------------
    def set_settings(self, s: Settings) -> None:
        v = s.voice
        self.f0.blockSignals(True)
        self.f0.setCurrentIndex(max(0, self.f0.findData(v.f0_method)))
        self.f0.blockSignals(False)
        if v.model != self._current:
            self._current = v.model
            if self.status.accessibleName() == "Voice library problem":
                self.show_status("")  # an old complaint about the previous choice
            self._mark_current()
            if v.model in self.models:
                self.select(v.model)

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setAccessibleName("Voice library problem" if error else "Voice library state")


def _is_path(value: str) -> bool:
    return any(sep in value for sep in "/\\") or value.lower().endswith((".pth", ".onnx"))


def _pair(models: list[Path], indexes: list[Path]) -> list[tuple[Path, Path | None]]:
    """Each model with the index whose file name mentions the model's (RVC names them
    added_IVF…_<name>_v2.index), or with the only index when one model and one index came."""
    if len(models) == 1 and len(indexes) == 1:
        return [(models[0], indexes[0])]
    out = []
    for m in models:
        stem = m.stem.casefold()
        match = [i for i in indexes if stem and stem in i.name.casefold()]
        out.append((m, match[0] if len(match) == 1 else None))
    return out
