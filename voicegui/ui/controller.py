"""The controller owns the RealtimeEngine, the input meter and the current (immutable) Settings.

Widgets ask for changes; the controller builds a new Settings and hands it to the engine
(``RealtimeEngine.update``), so the engine only ever sees whole, validated snapshots. A ~30 Hz
QTimer reads the engine's metrics snapshot (never blocking on the audio thread) and emits it as a
signal for the graph and readouts. Engine events arrive from the audio thread and are marshalled to
the GUI thread through a queued signal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication

from voicegui.audio.devices import missing_devices
from voicegui.audio.meter import InputMeter
from voicegui.engine.metrics import Metrics, MetricsSnapshot
from voicegui.engine.offline import AudioFileError, read_audio, to_mono
from voicegui.engine.realtime import RealtimeEngine
from voicegui.presets import Preset
from voicegui.settings import AudioSettings, DeviceRef, Settings, SettingsError, with_changes
from voicegui.voices.registry import VOICES, create_voice, voice_available

log = logging.getLogger(__name__)

POLL_HZ = 30
RESTARTED = "restarted the audio streams"


def _voice_key(s: Settings) -> tuple[str, str, str]:
    """What identifies a voice object: changing any of these needs a new voice."""
    return s.voice.voice, s.voice.backend, s.voice.device


@contextmanager
def busy() -> Iterator[None]:
    """Wait cursor while the GUI thread does something that can take a moment (voice loading)."""
    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QGuiApplication.restoreOverrideCursor()


def describe_reference(data: np.ndarray, sr: int, path: Path) -> str:
    return f"{path.name}: {len(data) / sr:.1f} s, {sr} Hz"


def load_reference(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a reference clip as mono float32; raises AudioFileError with a user-facing message."""
    data, sr = read_audio(path)
    mono = to_mono(data)
    if float(np.max(np.abs(mono))) < 1e-4:
        raise AudioFileError(f"{Path(path).name} is silent: nothing to learn a voice from")
    return mono, sr


class Controller(QObject):
    settingsChanged = Signal(object)  # Settings
    metricsUpdated = Signal(object)  # MetricsSnapshot, ~30 Hz while the engine runs
    levelsUpdated = Signal(float, float)  # input RMS dB, input peak dB (engine or meter)
    meterStatus = Signal(str)  # '' when the input meter runs, else why not
    runningChanged = Signal(bool)
    statusMessage = Signal(str)
    notice = Signal(str, str, str)  # kind ('error', 'warning', 'info'), text, key
    engineLost = Signal(str)  # reason the engine stopped by itself (device lost, engine bug)
    referenceChanged = Signal(str, str)  # path, description ('' when cleared)
    _engineEvent = Signal(str, str)  # from the audio thread; connected queued

    def __init__(self, settings: Settings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = (settings or Settings()).validated()
        self.engine: RealtimeEngine | None = None
        self.meter: InputMeter | None = None
        self._meter_paused = False
        self._meter_stale = False
        self._reference: tuple[np.ndarray, int] | None = None
        self._last_metrics: Metrics | None = None
        self._voice_errors = 0
        self._deferred_notice: tuple[str, str] | None = None
        self.restarts = 0  # how many times a change restarted the streams (for tests/readouts)
        self._engineEvent.connect(self._on_engine_event, Qt.ConnectionType.QueuedConnection)
        self._timer = QTimer(self)
        self._timer.setInterval(round(1000 / POLL_HZ))
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._poll)
        if self._settings.voice.reference:
            try:
                self._reference = load_reference(self._settings.voice.reference)
            except AudioFileError as exc:
                self._settings = with_changes(self._settings, voice={"reference": ""})
                self._deferred_notice = (
                    "warning",
                    f"The saved reference clip cannot be used: {exc}",
                )
        self._timer.start()

    # ---- state -------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def running(self) -> bool:
        return self.engine is not None

    @property
    def metrics(self) -> Metrics | None:
        """The live engine's metrics, or the last run's (so the graph keeps its picture)."""
        return self.engine.metrics if self.engine is not None else self._last_metrics

    @property
    def reference(self) -> tuple[np.ndarray, int] | None:
        return self._reference

    def _engine_reference(self, s: Settings) -> tuple[np.ndarray, int] | None:
        info = VOICES.get(s.voice.voice)
        return self._reference if info is not None and info.needs_reference else None

    # ---- changes -----------------------------------------------------------------------------
    def change(self, **parts: dict) -> bool:
        """``change(engine={'bypass': True})``: apply one edit; False when it was refused."""
        try:
            new = with_changes(self._settings, **parts)
        except (SettingsError, TypeError) as exc:
            self.notice.emit("warning", f"Setting refused: {exc}", "settings")
            return False
        self.apply(new)
        return True

    def apply(self, new: Settings) -> bool:
        """Make ``new`` current (live where possible). Returns True when the streams restarted."""
        new = new.validated()
        old = self._settings
        if new == old:
            return False
        if new.voice.reference != old.voice.reference:
            try:
                self._reference = (
                    load_reference(new.voice.reference) if new.voice.reference else None
                )
            except AudioFileError as exc:
                self.notice.emit("error", f"Reference clip not used: {exc}", "reference")
                new = replace(new, voice=replace(new.voice, reference=old.voice.reference))
        self._settings = new
        restarted = False
        eng = self.engine
        if eng is not None:
            t0 = time.perf_counter()
            try:
                restarted = eng.update(new)
                voice_swap = _voice_key(old) != _voice_key(new)
                ref_swap = (
                    new.voice.reference != old.voice.reference
                    and self._engine_reference(new) is not None
                )
                if voice_swap or ref_swap:
                    with busy():
                        voice = create_voice(new.voice) if voice_swap else eng.voice
                        eng.set_voice(voice, self._engine_reference(new))
                    restarted = True
                    self._voice_errors = 0
            except Exception as exc:
                log.exception("applying settings failed")
                self._engine_failed(f"Could not apply the change: {exc}")
            else:
                if restarted:
                    self.restarts += 1
                    log.info("%s in %.0f ms", RESTARTED, (time.perf_counter() - t0) * 1e3)
                    self.statusMessage.emit(RESTARTED)
                if eng.rate_note and restarted:
                    self.notice.emit("warning", eng.rate_note, "rate")
        elif self._meter_inputs(old) != self._meter_inputs(new):
            self.open_meter()
        if new.voice.reference != old.voice.reference:
            ref = self._reference
            path = Path(new.voice.reference) if new.voice.reference else None
            self.referenceChanged.emit(
                str(path or ""),
                describe_reference(ref[0], ref[1], path) if ref is not None and path else "",
            )
        self.settingsChanged.emit(new)
        return restarted

    def set_reference(self, path: str | Path) -> str:
        """Validate and use a reference clip; returns its description, raises AudioFileError."""
        path = Path(path)
        data, sr = load_reference(path)  # raises with a clear message before anything changes
        if str(path) == self._settings.voice.reference:
            # same path, maybe new content (re-recorded): make apply() see a change and reload
            self._settings = with_changes(self._settings, voice={"reference": ""})
        self.apply(with_changes(self._settings, voice={"reference": str(path)}))
        return describe_reference(data, sr, path)

    def set_bypass(self, on: bool) -> None:
        self.change(engine={"bypass": bool(on)})

    def toggle_bypass(self) -> None:
        self.set_bypass(not self._settings.engine.bypass)

    # ---- presets -----------------------------------------------------------------------------
    def resolve_devices(self, audio: AudioSettings) -> tuple[AudioSettings, list[str]]:
        """Devices of a preset against this machine: missing ones keep the current device.

        A preset that names no devices at all (like the shipped ones) keeps the current devices.
        """
        cur = self._settings.audio
        empty = DeviceRef()
        if audio.input == empty and audio.output == empty:
            return replace(
                audio,
                input=cur.input,
                output=cur.output,
                monitor=cur.monitor,
                input_channel=cur.input_channel,
                wasapi_exclusive=cur.wasapi_exclusive,
            ), []
        missing = missing_devices(audio)
        notes = []
        changes = {}
        for label, keep in (("input", cur.input), ("output", cur.output), ("monitor", empty)):
            gone = [m for m in missing if m.startswith(label + " ")]
            if gone:
                changes[label] = keep
                notes.append(
                    f"{gone[0]} is missing; "
                    + (f"keeping {keep}" if label != "monitor" else "monitor output turned off")
                )
        return replace(audio, **changes), notes

    def load_preset(self, preset: Preset) -> list[str]:
        """Apply a preset; returns notes about what could not be applied (missing devices, ...)."""
        s = preset.settings
        audio, notes = self.resolve_devices(s.audio)
        voice = s.voice
        if not voice.reference:
            voice = replace(voice, reference=self._settings.voice.reference)
        elif not Path(voice.reference).is_file():
            notes.append(f"reference clip '{voice.reference}' is missing; keeping the current one")
            voice = replace(voice, reference=self._settings.voice.reference)
        ok, why = voice_available(voice.voice)
        if not ok:
            notes.append(why)
        # bypass is a momentary switch, not part of a sound: keep the current state
        engine = replace(s.engine, bypass=self._settings.engine.bypass)
        self.apply(replace(s, audio=audio, voice=voice, engine=engine))
        for note in notes:
            self.notice.emit("warning", f"Preset '{preset.name}': {note}", f"preset:{note}")
        return notes

    # ---- engine lifecycle --------------------------------------------------------------------
    def start(self) -> bool:
        if self.engine is not None:
            return True
        s = self._settings
        info = VOICES.get(s.voice.voice)
        ok, why = voice_available(s.voice.voice)
        if not ok:
            self.notice.emit("error", f"Cannot start: {why}", "engine")
            return False
        if info is not None and info.needs_reference and self._reference is None:
            self.notice.emit(
                "error",
                f"Cannot start: {info.label} needs a reference clip "
                "(choose a file, drop one on the window, or record one).",
                "engine",
            )
            return False
        self.close_meter()
        t0 = time.perf_counter()
        voice = None
        try:
            with busy():
                voice = create_voice(s.voice)
                eng = RealtimeEngine(
                    s, voice, reference=self._engine_reference(s), on_event=self._from_audio_thread
                )
                eng.start()
        except Exception as exc:
            log.exception("engine start failed")
            if voice is not None:
                try:
                    voice.close()
                except Exception:
                    log.exception("closing the voice failed")
            self.notice.emit("error", f"Cannot start: {exc}", "engine")
            self.open_meter()
            return False
        self.engine = eng
        self._voice_errors = 0
        log.info(
            "engine started in %.0f ms at %d Hz", (time.perf_counter() - t0) * 1e3, eng.sample_rate
        )
        self.runningChanged.emit(True)
        self.statusMessage.emit(f"Running at {eng.sample_rate} Hz")
        return True

    def stop(self, reason: str = "stopped") -> None:
        eng, self.engine = self.engine, None
        if eng is None:
            return
        t0 = time.perf_counter()
        try:
            eng.stop(reason)
            eng.close()
        except Exception:
            log.exception("engine stop failed")
        self._last_metrics = eng.metrics
        log.info("engine stopped (%s) in %.0f ms", reason, (time.perf_counter() - t0) * 1e3)
        self.runningChanged.emit(False)
        self.statusMessage.emit(f"Stopped ({reason})" if reason != "stopped" else "Stopped")
        self.open_meter()

    def toggle(self) -> None:
        if self.engine is None:
            self.start()
        else:
            self.stop()

    def restart(self) -> bool:
        self.stop("restarting")
        return self.start()

    def _engine_failed(self, message: str) -> None:
        self.stop("error")
        self.notice.emit("error", message, "engine")

    def shutdown(self) -> None:
        self._timer.stop()
        self.stop("closing")
        self.close_meter()

    # ---- input meter (while stopped) ---------------------------------------------------------
    @staticmethod
    def _meter_inputs(s: Settings) -> tuple:
        a = s.audio
        return a.input, a.sample_rate, a.input_channel

    def open_meter(self) -> None:
        self.close_meter()
        if self.engine is not None or self._meter_paused:
            return
        a = self._settings.audio
        try:
            self.meter = InputMeter(a.input, a.sample_rate, a.input_channel).open()
            self._meter_stale = False
        except Exception as exc:
            self.meter = None
            self.meterStatus.emit(f"Input level unavailable: {exc}")
            return
        self.meterStatus.emit("")

    def close_meter(self) -> None:
        meter, self.meter = self.meter, None
        if meter is not None:
            meter.close()

    def pause_meter(self, paused: bool) -> None:
        """Free the microphone (for recording a reference) or take it back."""
        self._meter_paused = paused
        if paused:
            self.close_meter()
        else:
            self.open_meter()

    # ---- polling (GUI thread, ~30 Hz) --------------------------------------------------------
    @Slot()
    def _poll(self) -> None:
        notice = self._deferred_notice
        if notice is not None:
            self._deferred_notice = None
            self.notice.emit(notice[0], notice[1], "reference")
        eng = self.engine
        if eng is not None:
            snap: MetricsSnapshot = eng.snapshot()
            if not eng.running:
                self._lost(snap.status or "the audio engine stopped")
                return
            self.metricsUpdated.emit(snap)
            self.levelsUpdated.emit(snap.input_db, snap.input_db)
            if snap.voice_errors > self._voice_errors:
                self._voice_errors = snap.voice_errors
                self.notice.emit(
                    "warning",
                    f"The voice failed {snap.voice_errors} time(s), last: "
                    f"{snap.last_error} (playing {self._settings.engine.on_voice_error} audio "
                    "meanwhile)",
                    "voice-error",
                )
        elif self.meter is not None:
            if not self.meter.active:
                self.close_meter()
                self.meterStatus.emit("Input level unavailable: the input stream stopped")
                return
            stale = self.meter.stale(2.0)
            if stale != self._meter_stale:  # say it once when it happens, once when it is over
                self._meter_stale = stale
                self.meterStatus.emit("No audio from the input device for 2 s" if stale else "")
            self.levelsUpdated.emit(self.meter.rms_db, self.meter.peak_db)

    def _lost(self, reason: str) -> None:
        """The audio thread ended by itself: clean up, say why, offer a restart."""
        log.warning("engine stopped by itself: %s", reason)
        self.stop(reason)
        self.engineLost.emit(reason)

    # ---- audio thread -> GUI -----------------------------------------------------------------
    def _from_audio_thread(self, kind: str, message: str) -> None:
        # runs on the audio thread (or inside start()): only emit, the slot runs in the GUI thread
        self._engineEvent.emit(kind, message)

    @Slot(str, str)
    def _on_engine_event(self, kind: str, message: str) -> None:
        log.info("engine event %s: %s", kind, message)
        if kind == "error":
            # the poll turns a dead audio thread into engineLost with this same reason
            if self.engine is not None and not self.engine.running:
                self._lost(message)
            return
        self.notice.emit("warning" if kind == "warning" else "info", message, f"event:{kind}")
