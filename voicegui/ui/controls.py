"""Sliders for every numeric setting and check boxes for every on/off one, built from the
``Spec`` and ``Flag`` metadata in settings.py.

Ranges, steps, units, labels, help texts, "restarts the streams" and "which voices use it" all
come from the dataclass fields, so a new setting shows up here without repeating its numbers.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from voicegui.settings import EngineSettings, Flag, Settings, Spec, VoiceSettings
from voicegui.voices.catalog import VOICES

# Which group a setting appears in; anything not named here lands in "Other".
GROUPS = {
    "Timing": (
        "block_time",
        "crossfade_time",
        "extra_left_time",
        "extra_dit_left_time",
        "extra_right_time",
        "buffer_margin_time",
    ),
    "Voice": (
        "pitch",
        "formant",
        "diffusion_steps",
        "cfg_rate",
        "max_prompt_time",
        "style_from_prompt",
        "index_rate",
        "protect",
    ),
    "Levels and silence gate": (
        "denoise",
        "denoise_mix",
        "input_gain_db",
        "output_gain_db",
        "gate_threshold_db",
        "gate_hold_time",
    ),
}


def spec_fields() -> list[tuple[str, str, Spec, bool]]:
    """(part, field, spec, is_int) for every numeric setting, in declaration order."""
    out = []
    for part, kind in (("engine", EngineSettings), ("voice", VoiceSettings)):
        for f in fields(kind):
            spec = f.metadata.get("spec")
            if spec is not None:
                is_int = f.default is not MISSING and type(f.default) is int
                out.append((part, f.name, spec, is_int))
    return out


def flag_fields() -> list[tuple[str, str, Flag]]:
    """(part, field, flag) for every on/off setting, in declaration order."""
    out = []
    for part, kind in (("engine", EngineSettings), ("voice", VoiceSettings)):
        for f in fields(kind):
            flag = f.metadata.get("flag")
            if flag is not None:
                out.append((part, f.name, flag))
    return out


def _voices_note(voices: tuple[str, ...]) -> str:
    users = " and ".join(VOICES[v].label.split(" (")[0] if v in VOICES else v for v in voices)
    return f"Not used by this voice (only {users})"


def voice_label(name: str) -> str:
    info = VOICES.get(name)
    return info.label if info is not None else name


def _decimals(step: float) -> int:
    if step >= 1:
        return 0
    return max(0, min(4, math.ceil(-math.log10(step) - 1e-9)))


class SpecControl(QWidget):
    """Label + slider + spin box (value with unit) + a note saying why it is disabled."""

    valueChanged = Signal(str, str, object)  # part, field, value in settings units

    def __init__(
        self, part: str, name: str, spec: Spec, is_int: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.part, self.name, self.spec, self.is_int = part, name, spec, is_int
        # short times read better in milliseconds; the stored value stays in seconds
        self.scale = 1000.0 if spec.unit == "s" and spec.hi <= 1.0 else 1.0
        self.unit = "ms" if self.scale == 1000.0 else spec.unit
        self.steps = max(1, round((spec.hi - spec.lo) / spec.step))
        self._value = spec.lo

        self.label = QLabel(spec.label)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self.steps)
        self.slider.setSingleStep(1)
        self.slider.setPageStep(max(1, self.steps // 20))
        self.slider.setMinimumWidth(90)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        if spec.restart:
            # a restart per pixel of drag would stutter: apply when the handle is released
            self.slider.setTracking(False)
        if is_int:
            self.spin: QAbstractSpinBox = QSpinBox()
            self.spin.setRange(int(spec.lo), int(spec.hi))
            self.spin.setSingleStep(max(1, int(spec.step)))
        else:
            self.spin = QDoubleSpinBox()
            decimals = _decimals(spec.step * self.scale)
            self.spin.setDecimals(decimals)
            self.spin.setRange(spec.lo * self.scale, spec.hi * self.scale)
            self.spin.setSingleStep(spec.step * self.scale)
        if self.unit:
            self.spin.setSuffix(f" {self.unit}")
        self.spin.setKeyboardTracking(False)  # typing "120" must not apply 1, 12, 120
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setMinimumWidth(92)
        self.label.setBuddy(self.spin)
        self.note = QLabel()
        self.note.setEnabled(False)  # drawn in the palette's disabled colour: a hint, not an alarm
        self.note.setWordWrap(True)
        font = self.note.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.note.setFont(font)

        self.slider.setAccessibleName(f"{spec.label} slider")
        self.spin.setAccessibleName(spec.label)
        self.slider.setAccessibleDescription(spec.help)
        self.spin.setAccessibleDescription(spec.help)
        self.base_tooltip = self._tooltip()
        self.set_applicable(True)

        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def _tooltip(self) -> str:
        s = self.spec
        lo, hi = s.lo * self.scale, s.hi * self.scale
        unit = f" {self.unit}" if self.unit else ""
        lines = [s.help, f"Range {lo:g} to {hi:g}{unit}."]
        if s.restart:
            lines.append("Changing it restarts the audio streams (a short gap).")
        else:
            lines.append("Applies live, without interrupting the audio.")
        if s.voices:
            lines.append("Used by: " + ", ".join(voice_label(v) for v in s.voices) + ".")
        return "\n".join(lines)

    # ---- value conversion --------------------------------------------------------------------
    def _snap(self, value: float) -> float | int:
        s = self.spec
        i = round((min(max(value, s.lo), s.hi) - s.lo) / s.step)
        v = min(s.hi, s.lo + i * s.step)
        return int(round(v)) if self.is_int else round(v, 6)

    def value(self) -> float | int:
        return self._value

    def set_value(self, value: float) -> None:
        """Show ``value`` (settings units) without emitting a change."""
        v = self._snap(value)
        self._value = v
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.slider.setValue(round((v - self.spec.lo) / self.spec.step))
        self.spin.setValue(v if self.is_int else v * self.scale)
        for w in (self.slider, self.spin):
            w.blockSignals(False)

    def _emit(self, v: float | int) -> None:
        if v != self._value:
            self._value = v
            self.valueChanged.emit(self.part, self.name, v)

    def _from_slider(self, i: int) -> None:
        v = self._snap(self.spec.lo + i * self.spec.step)
        self.spin.blockSignals(True)
        self.spin.setValue(v if self.is_int else v * self.scale)
        self.spin.blockSignals(False)
        self._emit(v)

    def _from_spin(self, shown: float) -> None:
        v = self._snap(shown if self.is_int else shown / self.scale)
        self.slider.blockSignals(True)
        self.slider.setValue(round((v - self.spec.lo) / self.spec.step))
        self.slider.blockSignals(False)
        self._emit(v)

    # ---- applicability -----------------------------------------------------------------------
    def set_applicable(self, ok: bool, reason: str = "") -> None:
        for w in (self.label, self.slider, self.spin):
            w.setEnabled(ok)
            w.setToolTip(self.base_tooltip if ok else f"{reason}.\n\n{self.base_tooltip}")
        self.spin.setAccessibleDescription(self.spec.help if ok else f"{reason}. {self.spec.help}")
        self.note.setText("" if ok else reason)
        self.note.setVisible(not ok)

    @property
    def applicable(self) -> bool:
        return self.slider.isEnabled()

    def widgets(self) -> list[QWidget]:
        return [self.label, self.slider, self.spin, self.note]


class ControlsPanel(QWidget):
    """All sliders, grouped; emits ``changed(part, field, value)`` for the controller."""

    changed = Signal(str, str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controls: dict[str, SpecControl] = {}
        self.flags: dict[str, tuple[QCheckBox, Flag]] = {}
        self._extra_labels: list[QLabel] = []
        self._voice = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        by_group: dict[str, list[SpecControl]] = {}
        for part, name, spec, is_int in spec_fields():
            c = SpecControl(part, name, spec, is_int, self)
            c.valueChanged.connect(self.changed)
            self.controls[f"{part}.{name}"] = c
            group = next((g for g, names in GROUPS.items() if name in names), "Other")
            by_group.setdefault(group, []).append(c)
        flags_by_group: dict[str, list[tuple[str, str, Flag]]] = {}
        for part, name, flag in flag_fields():
            group = next((g for g, names in GROUPS.items() if name in names), "Other")
            flags_by_group.setdefault(group, []).append((part, name, flag))
        for title in [*GROUPS, "Other"]:
            items = by_group.get(title, [])
            if not items and not flags_by_group.get(title):
                continue
            box = QGroupBox(title)
            grid = QGridLayout(box)
            grid.setColumnStretch(1, 1)
            row = 0
            for c in items:
                grid.addWidget(c.label, row, 0)
                grid.addWidget(c.slider, row, 1)
                grid.addWidget(c.spin, row, 2)
                grid.addWidget(c.note, row + 1, 1, 1, 2)
                row += 2
            for part, name, flag in flags_by_group.get(title, []):
                box_ = QCheckBox(flag.label)
                box_.setToolTip(flag.help)
                box_.setAccessibleName(flag.label)
                box_.setAccessibleDescription(flag.help)
                box_.toggled.connect(
                    lambda on, part=part, name=name: self.changed.emit(part, name, bool(on))
                )
                self.flags[f"{part}.{name}"] = (box_, flag)
                grid.addWidget(box_, row, 1, 1, 2)
                row += 1
            if title == "Levels and silence gate":
                self.on_error = QComboBox()
                self.on_error.addItem("Play my dry voice", "dry")
                self.on_error.addItem("Play the built-in voice", "builtin")
                self.on_error.addItem("Play silence", "silence")
                self.on_error.setAccessibleName("When the voice fails")
                self.on_error.setToolTip(
                    "What you hear while the voice fails on a block, or while a Remote GPU's "
                    "block comes back late (applies live). The built-in voice, with your pitch "
                    "and formant, keeps your own voice off the stream."
                )
                label = QLabel("When the voice fails")
                label.setBuddy(self.on_error)
                self._extra_labels.append(label)
                grid.addWidget(label, row, 0)
                grid.addWidget(self.on_error, row, 1, 1, 2)
                self.on_error.currentIndexChanged.connect(self._on_error_changed)
            lay.addWidget(box)
        lay.addStretch(1)
        # one label width for every group, so the sliders line up across groups
        labels = [c.label for c in self.controls.values()] + self._extra_labels
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)

    def control(self, part: str, name: str) -> SpecControl:
        return self.controls[f"{part}.{name}"]

    def _on_error_changed(self, index: int) -> None:
        self.changed.emit("engine", "on_voice_error", self.on_error.itemData(index))

    def set_settings(self, s: Settings) -> None:
        for c in self.controls.values():
            c.set_value(getattr(getattr(s, c.part), c.name))
        for key, (box_, _) in self.flags.items():
            part, name = key.split(".")
            box_.blockSignals(True)
            box_.setChecked(bool(getattr(getattr(s, part), name)))
            box_.blockSignals(False)
        self.on_error.blockSignals(True)
        self.on_error.setCurrentIndex(max(0, self.on_error.findData(s.engine.on_voice_error)))
        self.on_error.blockSignals(False)
        if s.voice.voice != self._voice:  # tooltips and notes only change with the voice
            self.set_voice(s.voice.voice)

    def set_voice(self, voice: str) -> None:
        """Disable the controls the chosen voice does not use, saying why."""
        self._voice = voice
        for c in self.controls.values():
            voices = c.spec.voices
            if not voices or voice in voices:
                c.set_applicable(True)
            else:
                c.set_applicable(False, _voices_note(voices))
        for box_, flag in self.flags.values():
            ok = not flag.voices or voice in flag.voices
            box_.setEnabled(ok)
            box_.setToolTip(flag.help if ok else f"{_voices_note(flag.voices)}. {flag.help}")
