"""Devices: host API, input/output/monitor pickers, sample rate, latency, WASAPI exclusive, meter.

Devices are stored by (host API, name); the host API picker filters the three device lists. A
device named by the settings but not present now stays in its list, marked "(missing)", so a preset
from another machine shows what it wanted. The input level meter is fed by the controller.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from voicegui.audio.cables import cable_for, find_cables, input_warning, missing_advice
from voicegui.audio.device_info import COMMON_RATES, PREFERRED_HOSTAPIS, DeviceInfo
from voicegui.audio.virtual_mic import DISPLAY_NAME
from voicegui.settings import AudioSettings, DeviceRef

log = logging.getLogger(__name__)

METER_FLOOR_DB = -60.0
TOOLTIP = Qt.ItemDataRole.ToolTipRole


class LevelMeter(QProgressBar):
    """RMS level as a bar (-60..0 dBFS) with the peak in the text; palette colours only."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(0, 600)
        self.setTextVisible(True)
        self.setAccessibleName("Input level")
        self.setToolTip(
            "Microphone level (RMS bar, peak in dB). Live even while the voice "
            "changer is stopped, so you can check that the microphone works."
        )
        self.rms_db = self.peak_db = -120.0
        self._hold = -120.0
        self.set_level(-120.0, -120.0)

    def set_level(self, rms_db: float, peak_db: float) -> None:
        self.rms_db, self.peak_db = rms_db, peak_db
        # peak hold that falls 0.5 dB per update (~15 dB/s at 30 Hz): readable, not jumpy
        self._hold = max(peak_db, self._hold - 0.5)
        v = min(max(rms_db, METER_FLOOR_DB), 0.0)
        self.setValue(round((v - METER_FLOOR_DB) * 10))
        if rms_db <= -119.0:
            self.setFormat("silence")
        else:
            self.setFormat(f"{rms_db:.0f} dB  (peak {self._hold:.0f} dB)")


class DevicePanel(QWidget):
    changed = Signal(dict)  # AudioSettings field -> new value
    refreshRequested = Signal()

    def __init__(
        self,
        parent: QWidget | None = None,
        lister: Callable[[bool], tuple[list[str], list[DeviceInfo], str]] | None = None,
        platform: str = sys.platform,
    ) -> None:
        super().__init__(parent)
        # Linux: voicegui's own virtual microphone; elsewhere a virtual cable as the output
        self._own_mic = platform.startswith("linux")
        self._platform = platform
        self._output_before: DeviceRef | None = None  # the output a cable replaced
        self._lister = lister or (lambda rescan: ([], [], ""))  # the audio host lists them
        self._default_api = ""
        self._audio = AudioSettings()
        self._devices: list[DeviceInfo] = []
        self._hostapis: list[str] = []

        self.hostapi = QComboBox()
        self.hostapi.setAccessibleName("Host API")
        self.hostapi.setToolTip(
            "The audio system PortAudio uses (ALSA, JACK, PulseAudio, "
            "WASAPI, ASIO, Core Audio ...). It filters the device lists."
        )
        self.input = QComboBox()
        self.input.setAccessibleName("Input device")
        self.input.setToolTip("The microphone the voice changer listens to.")
        # says when the chosen input is not a microphone (a cable's recording end, a loop)
        self.input_note = QLabel()
        self.input_note.setWordWrap(True)
        self.input_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.input_note.setAccessibleName("Input warning")
        self.input_note.hide()
        self.channel = QSpinBox()
        self.channel.setRange(1, 64)
        self.channel.setAccessibleName("Input channel")
        self.channel.setToolTip(
            "Which input channel carries your voice (for multi-channel interfaces)."
        )
        self.output = QComboBox()
        self.output.setAccessibleName("Output device")
        self.output.setToolTip(
            "Where the converted voice goes: headphones, or a virtual cable "
            "that Discord, OBS or a game listens to."
        )
        self.monitor = QComboBox()
        self.monitor.setAccessibleName("Monitor output device")
        self.monitor.setToolTip(
            "Optional second output with the same converted voice, e.g. "
            "your headphones while the main output feeds a virtual cable."
        )
        self.rate = QComboBox()
        self.rate.setAccessibleName("Sample rate")
        self.rate.setToolTip(
            "Device sample rate. Changing it restarts the audio streams; if a "
            "device refuses it, a rate all devices take is used and you are told."
        )
        for r in sorted(COMMON_RATES):
            self.rate.addItem(f"{r} Hz", r)
        self.latency = QComboBox()
        self.latency.addItem("Low", "low")
        self.latency.addItem("High (safer)", "high")
        self.latency.setAccessibleName("Device latency")
        self.latency.setToolTip(
            "PortAudio's suggested device latency. High survives busy "
            "systems better. Changing it restarts the audio streams."
        )
        self.send_to_apps = QCheckBox("Send to apps")
        self.send_to_apps.setAccessibleName("Send to apps")
        self.send_to_apps.setToolTip(
            "Make the converted voice a microphone that Discord, OBS, a browser or a game can "
            f'pick: "{DISPLAY_NAME}". The Monitor output, if chosen, still lets you hear it.'
            if self._own_mic
            else "Play the converted voice into a virtual cable (VB-CABLE, VoiceMeeter, "
            "BlackHole, Loopback) so that Discord, OBS or a game can pick it as a microphone. "
            "Choose a Monitor output to hear yourself."
        )
        self.send_status = QLabel()
        self.send_status.setWordWrap(True)
        self.send_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.send_status.setAccessibleName("Send to apps status")
        self.send_status.hide()
        self.exclusive = QCheckBox("WASAPI exclusive mode")
        self.exclusive.setAccessibleName("WASAPI exclusive mode")
        self.refresh = QPushButton("Refresh")
        self.refresh.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        self.refresh.setAccessibleName("Refresh device list")
        self.refresh.setToolTip(
            "Rescan audio devices (after plugging something in or starting an audio server)."
        )
        for combo in (self.hostapi, self.input, self.output, self.monitor):
            # long device names must not force the dock wider than the screen
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self.meter = LevelMeter()
        self.meter_note = QLabel()
        self.meter_note.setWordWrap(True)
        self.meter_note.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        api_row = QHBoxLayout()
        api_row.addWidget(self.hostapi, 1)
        api_row.addWidget(self.refresh)
        form.addRow(self._label("&Host API", self.hostapi), api_row)
        in_row = QHBoxLayout()
        in_row.addWidget(self.input, 1)
        in_row.addWidget(QLabel("ch"))
        in_row.addWidget(self.channel)
        form.addRow(self._label("&Input", self.input), in_row)
        form.addRow("", self.input_note)
        form.addRow(self._label("&Output", self.output), self.output)
        form.addRow(self._label("&Monitor", self.monitor), self.monitor)
        form.addRow("", self.send_to_apps)
        form.addRow("", self.send_status)
        rate_row = QHBoxLayout()
        rate_row.addWidget(self.rate, 1)
        rate_row.addWidget(self._label("Late&ncy", self.latency))
        rate_row.addWidget(self.latency, 1)
        form.addRow(self._label("Sample &rate", self.rate), rate_row)
        form.addRow("", self.exclusive)
        form.addRow(self._label("Level", self.meter), self.meter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addWidget(self.meter_note)

        self.hostapi.currentIndexChanged.connect(self._on_hostapi)
        self.input.currentIndexChanged.connect(lambda: self._emit("input", self.input))
        self.output.currentIndexChanged.connect(lambda: self._emit("output", self.output))
        self.monitor.currentIndexChanged.connect(lambda: self._emit("monitor", self.monitor))
        self.channel.valueChanged.connect(lambda v: self.changed.emit({"input_channel": v - 1}))
        self.rate.currentIndexChanged.connect(
            lambda: self.changed.emit({"sample_rate": int(self.rate.currentData())})
        )
        self.latency.currentIndexChanged.connect(
            lambda: self.changed.emit({"latency": self.latency.currentData()})
        )
        self.exclusive.toggled.connect(lambda on: self.changed.emit({"wasapi_exclusive": on}))
        self.send_to_apps.toggled.connect(self._on_send_to_apps)
        self.refresh.clicked.connect(self.refreshRequested)
        self.rescan()

    @staticmethod
    def _label(text: str, buddy: QWidget) -> QLabel:
        label = QLabel(text)
        label.setBuddy(buddy)
        return label

    # ---- listing -----------------------------------------------------------------------------
    def rescan(self, reinitialize: bool = False) -> None:
        """Re-read host APIs and devices (``reinitialize``: PortAudio looks for new ones)."""
        try:
            self._hostapis, self._devices, self._default_api = self._lister(reinitialize)
        except Exception as exc:  # PortAudio missing: the rest of the app still works
            log.exception("listing audio devices failed")
            self._hostapis, self._devices = [], []
            self.show_meter_status(f"No audio devices: {exc}")
        self.set_audio(self._audio)

    def _current_hostapi(self, audio: AudioSettings) -> str:
        for ref in (audio.input, audio.output):
            if ref.hostapi:
                return ref.hostapi
        # no host API chosen yet: on Windows WASAPI where it has devices (PortAudio's default is
        # MME, whose buffering adds tens of milliseconds); else the one of the system default
        # input, else the first with devices
        for api in PREFERRED_HOSTAPIS:
            if any(d.hostapi == api for d in self._devices):
                return api
        if self._default_api:
            return self._default_api
        for api in self._hostapis:
            if any(d.hostapi == api for d in self._devices):
                return api
        return self._hostapis[0] if self._hostapis else ""

    def _fill(self, combo: QComboBox, kind: str, api: str, ref: DeviceRef, optional: bool) -> None:
        combo.blockSignals(True)
        combo.clear()
        if optional:
            combo.addItem("Off", DeviceRef())
        else:
            combo.addItem(f"Default ({api})" if api else "Default", DeviceRef(hostapi=api))
        for d in self._devices:
            if d.hostapi == api and d.channels(kind) > 0:
                combo.addItem(d.name, d.ref)
                combo.setItemData(
                    combo.count() - 1,
                    f"{d.channels(kind)} channels, {d.default_samplerate:g} Hz default",
                    TOOLTIP,
                )
        index = self._find(combo, ref)
        if index < 0 and ref.name:
            combo.addItem(f"{ref.name} (missing)", ref)
            where = ref.hostapi or "any host API"
            combo.setItemData(
                combo.count() - 1,
                f"Not present now on {where}; plug it in and "
                "press Refresh, or choose another device.",
                TOOLTIP,
            )
            index = combo.count() - 1
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)

    @staticmethod
    def _find(combo: QComboBox, ref: DeviceRef) -> int:
        for i in range(combo.count()):
            item: DeviceRef = combo.itemData(i)
            if item.name == ref.name and (
                not ref.hostapi or item.hostapi == ref.hostapi or not item.hostapi
            ):
                return i
        return -1

    # ---- settings -> widgets -----------------------------------------------------------------
    def set_audio(self, audio: AudioSettings) -> None:
        self._audio = audio
        api = self._current_hostapi(audio)
        self.hostapi.blockSignals(True)
        self.hostapi.clear()
        names = list(self._hostapis)
        if api and api not in names:
            names.append(api)
        for name in names:
            count = sum(1 for d in self._devices if d.hostapi == name)
            label = name if name in self._hostapis else f"{name} (missing)"
            self.hostapi.addItem(
                label if count or name not in self._hostapis else f"{name} (no devices)", name
            )
        self.hostapi.setCurrentIndex(max(0, self.hostapi.findData(api)))
        self.hostapi.blockSignals(False)
        self._fill(self.input, "input", api, audio.input, optional=False)
        self._fill(self.output, "output", api, audio.output, optional=False)
        self._fill(self.monitor, "output", api, audio.monitor, optional=True)
        for w, value in ((self.channel, audio.input_channel + 1),):
            w.blockSignals(True)
            w.setValue(value)
            w.blockSignals(False)
        for combo, data in ((self.rate, audio.sample_rate), (self.latency, audio.latency)):
            combo.blockSignals(True)
            i = combo.findData(data)
            if i < 0:
                combo.addItem(str(data), data)
                i = combo.count() - 1
            combo.setCurrentIndex(i)
            combo.blockSignals(False)
        self._show_send_to_apps(audio, api)
        warning = input_warning(self._devices, audio.input, (audio.output, audio.monitor))
        self.input_note.setText(f"\N{WARNING SIGN} {warning}" if warning else "")
        self.input_note.setVisible(bool(warning))
        wasapi = "WASAPI" in api
        self.exclusive.blockSignals(True)
        self.exclusive.setChecked(audio.wasapi_exclusive and wasapi)
        self.exclusive.setEnabled(wasapi)
        self.exclusive.setToolTip(
            "Exclusive mode: the lowest latency on Windows, but other apps cannot use the device "
            "meanwhile."
            if wasapi
            else "Only for the Windows WASAPI host API."
        )
        self.exclusive.blockSignals(False)

    def set_running(self, running: bool) -> None:
        # rescanning terminates PortAudio, which open streams would not survive
        self.refresh.setEnabled(not running)
        self.refresh.setToolTip(
            "Stop the voice changer to rescan devices."
            if running
            else "Rescan audio devices (after plugging something in or starting an audio server)."
        )

    # ---- widgets -> changes ------------------------------------------------------------------
    def _on_hostapi(self) -> None:
        api = self.hostapi.currentData() or ""
        for combo, kind, optional in (
            (self.input, "input", False),
            (self.output, "output", False),
            (self.monitor, "output", True),
        ):
            self._fill(
                combo, kind, api, DeviceRef() if optional else DeviceRef(hostapi=api), optional
            )
        self.changed.emit(
            {
                "input": self.input.currentData(),
                "output": self.output.currentData(),
                "monitor": self.monitor.currentData(),
                "wasapi_exclusive": False,
            }
        )

    def _emit(self, field: str, combo: QComboBox) -> None:
        self.changed.emit({field: combo.currentData()})

    def select(self, kind: str, name: str) -> bool:
        """Pick a device by name in one of the lists ('input', 'output', 'monitor')."""
        combo = {"input": self.input, "output": self.output, "monitor": self.monitor}[kind]
        for i in range(combo.count()):
            ref = combo.itemData(i)
            if ref.name == name:
                combo.setCurrentIndex(i)
                return True
        return False

    def select_hostapi(self, name: str) -> bool:
        i = self.hostapi.findData(name)
        if i >= 0:
            self.hostapi.setCurrentIndex(i)
        return i >= 0

    # ---- "Send to apps" -----------------------------------------------------------------------
    def _show_send_to_apps(self, audio: AudioSettings, api: str) -> None:
        if self._own_mic:
            on = audio.virtual_mic
            self.output.setEnabled(not on)
            self.output.setToolTip(
                "The voice goes to the virtual microphone while Send to apps is on; choose a "
                "Monitor output to hear yourself."
                if on
                else "Where the converted voice goes: headphones, or a virtual cable that "
                "Discord, OBS or a game listens to."
            )
            if not on:
                self._set_send_status("")
        else:
            cable = next((c for c in find_cables(self._devices) if c.output == audio.output), None)
            on = cable is not None
            self._set_send_status(cable.advice if cable is not None else "")
        self.send_to_apps.blockSignals(True)
        self.send_to_apps.setChecked(on)
        self.send_to_apps.blockSignals(False)

    def _on_send_to_apps(self, on: bool) -> None:
        if self._own_mic:
            self.changed.emit({"virtual_mic": on})  # the controller makes or removes it
            return
        api = self.hostapi.currentData() or ""
        if not on:
            before, self._output_before = self._output_before, None
            self.changed.emit({"output": before or DeviceRef(hostapi=api)})
            return
        cable = cable_for(self._devices, api)
        if cable is None:  # nothing to play into: say what to install, the switch stays off
            self.send_to_apps.blockSignals(True)
            self.send_to_apps.setChecked(False)
            self.send_to_apps.blockSignals(False)
            self._set_send_status(missing_advice(self._platform, self._devices, api))
            return
        self._output_before = self._audio.output
        self.changed.emit({"output": cable.output})

    def show_virtual_mic(self, state: dict) -> None:
        """The virtual microphone's state from the audio host (Linux): what to pick in the
        other program, or why there is none (the switch is then off)."""
        if not state.get("on"):
            self.send_to_apps.blockSignals(True)
            self.send_to_apps.setChecked(False)
            self.send_to_apps.blockSignals(False)
            self.output.setEnabled(True)
        self._set_send_status(state.get("message") or state.get("error") or "")

    def _set_send_status(self, text: str) -> None:
        self.send_status.setText(text)
        self.send_status.setVisible(bool(text))

    # ---- meter -------------------------------------------------------------------------------
    def set_level(self, rms_db: float, peak_db: float) -> None:
        self.meter.set_level(rms_db, peak_db)

    def show_meter_status(self, text: str) -> None:
        self.meter_note.setText(text)
        self.meter_note.setVisible(bool(text))
        if text:
            self.meter.set_level(-120.0, -120.0)
