"""Presets: list, load, save as, overwrite, rename, delete, import and export (PresetStore).

The buttons ask for names and files with dialogs, then call the plain methods below (which tests
call directly). Corrupt preset files found while listing are reported once each: PresetStore has
already renamed them aside, so nothing is overwritten silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from voicegui.presets import Preset, PresetError, PresetStore
from voicegui.settings import Settings

log = logging.getLogger(__name__)
NAME_ROLE = Qt.ItemDataRole.UserRole


class PresetsPanel(QWidget):
    loadRequested = Signal(object)  # Preset
    notice = Signal(str, str, str)  # kind, text, key
    currentChanged = Signal(str)  # name of the preset last loaded or saved

    def __init__(
        self, store: PresetStore, settings: Callable[[], Settings], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.current = ""  # last loaded/saved preset
        self._reported: set[Path] = set()
        self.list = QListWidget()
        self.list.setAccessibleName("Presets")
        self.list.setToolTip("Double-click or press Enter to load a preset.")
        self.list.setMinimumHeight(120)

        def button(text: str, tip: str) -> QPushButton:
            b = QPushButton(text)
            b.setToolTip(tip)
            b.setAccessibleName(text.replace("&", "").replace("…", ""))
            return b

        self.load_button = button("&Load", "Apply the selected preset.")
        self.save_as_button = button("&Save as…", "Save the current settings as a new preset.")
        self.overwrite_button = button(
            "O&verwrite", "Replace the selected preset with the current settings."
        )
        self.rename_button = button("Rena&me…", "Rename the selected user preset.")
        self.delete_button = button("&Delete", "Delete the selected user preset.")
        self.import_button = button("&Import…", "Add a preset from a JSON file.")
        self.export_button = button("E&xport…", "Write the selected preset to a JSON file.")
        grid = QGridLayout()
        for i, b in enumerate(
            (
                self.load_button,
                self.save_as_button,
                self.overwrite_button,
                self.rename_button,
                self.delete_button,
                self.import_button,
                self.export_button,
            )
        ):
            grid.addWidget(b, i // 3, i % 3)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(grid)

        self.list.itemActivated.connect(lambda item: self.load(item.data(NAME_ROLE)))
        self.list.currentItemChanged.connect(self._update_buttons)
        self.load_button.clicked.connect(lambda: self.load(self.selected()))
        self.save_as_button.clicked.connect(self._ask_save_as)
        self.overwrite_button.clicked.connect(self._ask_overwrite)
        self.rename_button.clicked.connect(self._ask_rename)
        self.delete_button.clicked.connect(self._ask_delete)
        self.import_button.clicked.connect(self._ask_import)
        self.export_button.clicked.connect(self._ask_export)
        self.refresh()

    # ---- listing -----------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> list[Preset]:
        select = select if select is not None else (self.selected() or self.current)
        presets = self.store.list()
        self.list.blockSignals(True)
        self.list.clear()
        for p in presets:
            item = QListWidgetItem(f"{p.name}  (built-in)" if p.builtin else p.name)
            item.setData(NAME_ROLE, p.name)
            item.setToolTip(
                f"{p.settings.voice.voice} voice, pitch {p.settings.voice.pitch:+g} "
                f"st, block {p.settings.engine.block_time * 1e3:g} ms"
                + ("\nShipped with the app (read-only)" if p.builtin else f"\n{p.path}")
            )
            if p.builtin:
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
            self.list.addItem(item)
            if p.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._report_quarantine()
        self._update_buttons()
        return presets

    def _report_quarantine(self) -> None:
        for aside, why in self.store.report.quarantined:
            if aside in self._reported:
                continue
            self._reported.add(aside)
            original = aside.name.split(".corrupt-")[0] + ".json"
            text = (
                f"Preset file '{original}' could not be read ({why}). It was kept aside as "
                f"'{aside.name}' in {aside.parent} and was not changed."
            )
            log.warning(text)
            self.notice.emit("warning", text, f"corrupt:{aside}")

    def selected(self) -> str:
        item = self.list.currentItem()
        return item.data(NAME_ROLE) if item is not None else ""

    def select(self, name: str) -> bool:
        for i in range(self.list.count()):
            if self.list.item(i).data(NAME_ROLE) == name:
                self.list.setCurrentRow(i)
                return True
        return False

    def _is_user(self, name: str) -> bool:
        return bool(name) and self.store.exists(name)

    def _update_buttons(self, *_: object) -> None:
        name = self.selected()
        user = self._is_user(name)
        for b in (self.load_button, self.overwrite_button, self.export_button):
            b.setEnabled(bool(name))
        for b in (self.rename_button, self.delete_button):
            b.setEnabled(user)
            b.setToolTip(
                b.toolTip().split("\n")[0]
                + (
                    ""
                    if user or not name
                    else "\nBuilt-in presets cannot be changed; save a copy instead."
                )
            )

    # ---- operations (no dialogs) -------------------------------------------------------------
    def _fail(self, what: str, exc: Exception) -> None:
        self.notice.emit("error", f"{what}: {exc}", "preset")

    def load(self, name: str) -> Preset | None:
        if not name:
            return None
        try:
            preset = self.store.load(name)
        except PresetError as exc:
            self._fail("Cannot load the preset", exc)
            self.refresh()
            return None
        self.current = name
        self.loadRequested.emit(preset)
        self.currentChanged.emit(name)
        return preset

    def save_as(self, name: str) -> Preset | None:
        try:
            preset = self.store.save(name, self.settings(), overwrite=False)
        except PresetError as exc:
            self._fail("Cannot save the preset", exc)
            return None
        self.current = preset.name
        self.refresh(select=preset.name)
        self.currentChanged.emit(preset.name)
        return preset

    def overwrite(self, name: str) -> Preset | None:
        try:
            preset = self.store.save(name, self.settings(), overwrite=True)
        except PresetError as exc:
            self._fail("Cannot overwrite the preset", exc)
            return None
        self.current = preset.name
        self.refresh(select=preset.name)
        self.currentChanged.emit(preset.name)
        return preset

    def rename(self, old: str, new: str) -> Preset | None:
        try:
            preset = self.store.rename(old, new)
        except PresetError as exc:
            self._fail("Cannot rename the preset", exc)
            return None
        if self.current == old:
            self.current = preset.name
            self.currentChanged.emit(preset.name)
        self.refresh(select=preset.name)
        return preset

    def delete(self, name: str) -> bool:
        try:
            self.store.delete(name)
        except PresetError as exc:
            self._fail("Cannot delete the preset", exc)
            return False
        if self.current == name:
            self.current = ""
            self.currentChanged.emit("")
        self.refresh(select="")
        return True

    def import_file(self, path: str | Path) -> Preset | None:
        try:
            preset = self.store.import_file(Path(path))
        except PresetError as exc:
            self._fail(f"Cannot import {Path(path).name}", exc)
            return None
        self.refresh(select=preset.name)
        self.notice.emit("info", f"Imported preset '{preset.name}'.", "preset")
        return preset

    def export(self, name: str, path: str | Path) -> Path | None:
        try:
            out = self.store.export(name, Path(path))
        except (PresetError, OSError) as exc:
            self._fail("Cannot export the preset", exc)
            return None
        return out

    # ---- dialogs -----------------------------------------------------------------------------
    def _ask_name(self, title: str, text: str = "") -> str:
        name, ok = QInputDialog.getText(self, title, "Preset name:", text=text)
        return name.strip() if ok else ""

    def _ask_save_as(self) -> None:
        name = self._ask_name("Save preset as", self.current or "My voice")
        if not name:
            return
        if self.store.exists(name):
            answer = QMessageBox.question(
                self, "Replace preset?", f"A preset named '{name}' exists. Replace it?"
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.overwrite(name)
            return
        self.save_as(name)

    def _ask_overwrite(self) -> None:
        name = self.selected()
        if name:
            self.overwrite(name)

    def _ask_rename(self) -> None:
        old = self.selected()
        if not self._is_user(old):
            return
        new = self._ask_name("Rename preset", old)
        if new and new != old:
            self.rename(old, new)

    def _ask_delete(self) -> None:
        name = self.selected()
        if not self._is_user(name):
            return
        answer = QMessageBox.question(self, "Delete preset?", f"Delete the preset '{name}'?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(name)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import preset", "", "Presets (*.json);;All files (*)"
        )
        if path:
            self.import_file(path)

    def _ask_export(self) -> None:
        name = self.selected()
        if not name:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export preset", f"{name}.json", "Presets (*.json)"
        )
        if path:
            self.export(name, path)
