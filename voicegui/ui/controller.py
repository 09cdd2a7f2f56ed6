"""The controller drives the audio host process and holds the current (immutable) Settings.

The audio (streams, meter, voices, torch) lives in another process (engine/host.py); the
controller talks to it through ``AudioHost`` and its proxies (``RemoteEngine``, ``RemoteVoice``,
``RemoteMeter``). Widgets ask for changes; the controller builds a new Settings and hands it to the
engine (``RemoteEngine.update``), so the engine only ever sees whole, validated snapshots. A ~30 Hz
QTimer reads the metrics from shared memory (never blocking on the audio) and emits them as a
signal for the graph and readouts. Engine events and the host's death arrive on the host reader
thread and are marshalled to the GUI thread through a queued signal. If the host dies, the window
says why and offers a restart; the settings stay as they were.

Heavy voices (neural, or needing a reference) are built and prepared in a worker ``Task``, never
on the GUI thread: the running voice keeps playing meanwhile, and the new one is swapped in with
``RemoteEngine.set_voice(voice, None)`` once ready (already prepared, so the engine's restart
does no reference work). The controller holds the voice: the engine's while it runs, and a loaded
neural voice stays held after Stop so that the next Start is immediate. Only the newest request
counts: results of superseded loads are dropped. A failed load reverts the settings to the voice
that still runs and says why in a banner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication

from voicegui.audio.virtual_mic import supported
from voicegui.engine.audiofile import AudioFileError, read_audio, to_mono
from voicegui.engine.client import (
    HOST_DIED,
    AudioHost,
    HostError,
    RemoteEngine,
    RemoteMeter,
    RemoteVoice,
)
from voicegui.engine.metrics import MetricsSnapshot
from voicegui.engine.metrics_board import MetricsView
from voicegui.presets import Preset
from voicegui.settings import (
    AudioSettings,
    DeviceRef,
    Settings,
    SettingsError,
    VoiceSettings,
    with_changes,
)
from voicegui.ui.compute import set_probed
from voicegui.ui.workers import Task
from voicegui.voices.catalog import VOICES, heavy, voice_available, voice_identity

Voice = RemoteVoice  # what the window holds: a handle on a voice in the audio host

FALLBACK_WORDS = {"dry": "your dry voice", "builtin": "the built-in voice", "silence": "silence"}
log = logging.getLogger(__name__)

POLL_HZ = 30
RESTARTED = "restarted the audio streams"
WAIT_KEY = "voice-wait"  # banner key: the chosen voice waits for something (reference, weights)


def _voice_key(s: Settings) -> tuple[str, str, str, str]:
    """What identifies a voice object: changing any of these needs a new voice."""
    return voice_identity(s.voice)


def voice_label(name: str) -> str:
    info = VOICES.get(name)
    return info.label.split(" (")[0] if info is not None else name


@dataclass
class HeldVoice:
    """A voice object and what it was built and prepared for."""

    key: tuple[str, str, str, str]  # voice_identity: (voice, backend, device, precision)
    ref: int  # serial of the reference clip it is prepared with (0: none needed)
    voice: Voice
    reference: tuple[np.ndarray, int] | None = None
    ref_path: str = ""


@dataclass(eq=False)
class VoiceRequest:
    """A voice to build (or, with ``reuse``, only to prepare) in a worker."""

    settings: VoiceSettings
    ref: int
    reference: tuple[np.ndarray, int] | None
    reuse: Voice | None = None
    launched: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return voice_identity(self.settings)


def build_voice(host: AudioHost, req: VoiceRequest) -> Voice:
    """Worker thread: the audio host builds the voice (or reuses one) and prepares it with the
    reference (handed over in memory, not read again from the file)."""
    info = VOICES.get(req.settings.voice)
    reuse = req.reuse if req.reuse is not None and req.reuse.valid else None
    voice = host.build_voice(
        replace(req.settings, reference=""),
        req.reference,
        reuse,
        needs_reference=info is not None and info.needs_reference,
    )
    if voice.compute_devices:
        set_probed(voice.compute_devices)  # probed there with torch: costs nothing more
    return voice


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
    voiceLoading = Signal(str)  # what loads in the background ("Loading Seed-VC…"); '' when done
    voiceReady = Signal(str, str)  # voice name, provider ("CPU (torch, fp32)") after a load
    # the recording of the voice: running, elapsed (s), bytes, path, error; ~2 Hz while it runs
    recordingChanged = Signal(object)
    # "Send to apps" on Linux: the virtual microphone's state (on, message, error, measured)
    virtualMicChanged = Signal(object)
    _engineEvent = Signal(str, str)  # from the audio thread; connected queued

    def __init__(
        self,
        settings: Settings | None = None,
        parent: QObject | None = None,
        host: AudioHost | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = (settings or Settings()).validated()
        self.host = host or AudioHost()
        self.host.on_event = self._from_audio_thread
        self.host.start()
        self.engine: RemoteEngine | None = None
        self.meter: RemoteMeter | None = None
        self._meter_paused = False
        self._meter_stale = False
        self._reference: tuple[np.ndarray, int] | None = None
        self._ref_serial = 0  # bumped whenever _reference changes
        self._held: HeldVoice | None = None
        self._wanted: VoiceRequest | None = None  # the newest voice request not yet answered
        self._load_task: Task | None = None
        self._vmic_task: Task | None = None
        self._vmic_switched = 0  # times the switch moved (a start-up answer after it is stale)
        self._start_wanted = False  # Start was pressed and waits for the voice
        self._voice_errors = 0
        self._deferred_notice: tuple[str, str] | None = None
        self.restarts = 0  # how many times a change restarted the streams (for tests/readouts)
        self.record_format = "wav"  # or "flac"
        self.record_dry = False  # also record the dry input, to a "-dry" file alongside
        self.record_folder = ""  # where recordings go ('': the music folder)
        self.recording_path = ""  # the file being (or last) recorded
        self.last_recording: dict | None = None  # what the last recording holds
        self._recording = False
        self._record_polls = 0
        self._engineEvent.connect(self._on_engine_event, Qt.ConnectionType.QueuedConnection)
        self._timer = QTimer(self)
        self._timer.setInterval(round(1000 / POLL_HZ))
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._poll)
        if self._settings.voice.reference:
            try:
                self._reference = load_reference(self._settings.voice.reference)
                self._ref_serial += 1
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
    def metrics(self) -> MetricsView:
        """The live engine's metrics, or the last run's (so the graph keeps its picture)."""
        return self.host.metrics

    @property
    def reference(self) -> tuple[np.ndarray, int] | None:
        return self._reference

    def _engine_reference(self, s: Settings) -> tuple[np.ndarray, int] | None:
        info = VOICES.get(s.voice.voice)
        return self._reference if info is not None and info.needs_reference else None

    def _wanted_ref(self, s: Settings) -> int:
        return self._ref_serial if self._engine_reference(s) is not None else 0

    @property
    def loading(self) -> bool:
        """A voice is being built or prepared in the background."""
        return self._wanted is not None

    @property
    def start_pending(self) -> bool:
        """Start was pressed and the engine starts once the voice is loaded."""
        return self._start_wanted

    @property
    def voice(self) -> Voice | None:
        """The voice the engine runs, or the loaded one kept for the next start."""
        return self._held.voice if self._held is not None else None

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
        """Make ``new`` current (live where possible). Returns True when the streams restarted.

        Another heavy voice, backend, device or reference is loaded in the background: the
        current voice keeps running until it is ready (``voiceLoading`` says so meanwhile).
        """
        new = new.validated()
        old = self._settings
        if new.audio.virtual_mic != old.audio.virtual_mic:
            new = self._switch_virtual_mic(new)
        if new == old:
            return False
        if new.voice.reference != old.voice.reference:
            try:
                self._reference = (
                    load_reference(new.voice.reference) if new.voice.reference else None
                )
                self._ref_serial += 1
            except AudioFileError as exc:
                self.notice.emit("error", f"Reference clip not used: {exc}", "reference")
                new = replace(new, voice=replace(new.voice, reference=old.voice.reference))
        self._settings = new
        restarted = False
        eng = self.engine
        if eng is not None:
            t0 = time.perf_counter()
            try:
                # the engine keeps its current voice until a new one is ready (see _sync_voice)
                restarted = eng.update(self._for_engine(new, eng))
                restarted = self._sync_voice() or restarted
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
                if new.audio.virtual_mic != old.audio.virtual_mic:
                    self.virtualMicChanged.emit(eng.info.get("virtual_mic") or {})
        else:
            if self._meter_inputs(old) != self._meter_inputs(new):
                self.open_meter()
            self._sync_voice()
        if new.voice.reference != old.voice.reference:
            self._emit_reference()
        self.settingsChanged.emit(new)
        return restarted

    def _emit_reference(self) -> None:
        ref = self._reference
        path = Path(self._settings.voice.reference) if self._settings.voice.reference else None
        self.referenceChanged.emit(
            str(path or ""),
            describe_reference(ref[0], ref[1], path) if ref is not None and path else "",
        )

    @staticmethod
    def _for_engine(new: Settings, eng: RemoteEngine) -> Settings:
        """``new`` with the identity of the voice the engine runs (it swaps voices only through
        ``set_voice``, so ``update`` never builds one on this thread)."""
        cur = eng.settings.voice
        return replace(
            new,
            voice=replace(
                new.voice,
                voice=cur.voice,
                backend=cur.backend,
                device=cur.device,
                precision=cur.precision,
            ),
        )

    # ---- "Send to apps" (Linux: voicegui's own virtual microphone) ----------------------------
    def _switch_virtual_mic(self, new: Settings) -> Settings:
        """The switch moved: make the virtual microphone before the engine plays into it (the
        host measures it first), or remove it while stopped (a running engine's host removes it
        once its streams left it). Refused: the switch stays off, a banner says what is
        missing."""
        on = new.audio.virtual_mic
        self._vmic_switched += 1  # what the start-up check finds is out of date now
        if not supported():
            return replace(new, audio=replace(new.audio, virtual_mic=False))
        if not on and self.engine is not None:
            return new
        try:
            with busy():
                self.host.ensure()
                state = self.host.virtual_mic(on, new.audio)
        except HostError as exc:
            self.virtualMicChanged.emit({"on": False, "error": str(exc), "message": str(exc)})
            if on:
                self.notice.emit("error", f"Send to apps: {exc}", "virtual-mic")
                return replace(new, audio=replace(new.audio, virtual_mic=False))
            return new
        self.virtualMicChanged.emit(state)
        return new

    def sync_virtual_mic(self) -> None:
        """At start-up, in the background: the virtual microphone as the settings say (made, or
        one a crashed run left behind reused, or removed)."""
        if not supported():
            return
        host, audio, switched = self.host, self._settings.audio, self._vmic_switched
        task = Task(lambda _t: host.virtual_mic(audio.virtual_mic, audio),
                    name="voicegui-virtual-mic", parent=self)  # fmt: skip
        task.succeeded.connect(
            lambda state: switched == self._vmic_switched and self.virtualMicChanged.emit(state)
        )
        task.failed.connect(
            lambda text, exc: switched == self._vmic_switched and self._virtual_mic_failed(exc)
        )
        self._vmic_task = task.start()

    def _virtual_mic_failed(self, exc: BaseException) -> None:
        # the switch turns off (pressing it again tries again) and its line says why
        if self._settings.audio.virtual_mic:
            self.apply(replace(self._settings, audio=replace(self._settings.audio,
                                                             virtual_mic=False)))  # fmt: skip
        self.virtualMicChanged.emit({"on": False, "error": str(exc), "message": str(exc)})

    # ---- voices ------------------------------------------------------------------------------
    def _sync_voice(self) -> bool:
        """Bring the voice in line with the settings; True when the streams restarted now."""
        s = self._settings
        key, ref = _voice_key(s), self._wanted_ref(s)
        held = self._held
        eng = self.engine
        if eng is None:
            if held is not None and held.key != key:
                self._drop_held()
            if self._start_wanted:
                if heavy(s.voice.voice) and self._startable(quiet=True):
                    self._request(reuse=True)
                else:  # a light voice now (or one that cannot start): start it or say why
                    self.cancel_start()
                    self.start()
            return False
        if held is not None and (held.key, held.ref) == (key, ref):
            self._cancel_load()  # back to what runs: forget a load on the way
            return False
        if not heavy(s.voice.voice):
            self._cancel_load()
            with busy():
                voice = self.host.create_voice(s.voice)
                self._swap_in(HeldVoice(key, 0, voice))
            return True
        info = VOICES[s.voice.voice]
        keeps = f"{voice_label(eng.settings.voice.voice)} keeps running meanwhile."
        ok, why = voice_available(s.voice.voice, s.voice)
        if not ok:  # nothing to load: keep the current voice until the weights are there
            self._cancel_load()
            self.notice.emit("warning", f"{info.label}: {why}. {keeps}", WAIT_KEY)
            return False
        if info.needs_reference and self._reference is None:
            # nothing to load yet: keep the current voice until a reference is chosen
            self._cancel_load()
            self.notice.emit(
                "info",
                f"{info.label} needs a reference clip: choose a file, drop one on the window, "
                f"or record one. {keeps}",
                WAIT_KEY,
            )
            return False
        self._request(reuse=True)
        return False

    def _request(self, reuse: bool) -> None:
        """Ask for the voice the settings name, built in the background (newest request wins)."""
        s = self._settings
        req = VoiceRequest(s.voice, self._wanted_ref(s), self._engine_reference(s))
        held = self._held
        if reuse and held is not None and held.key == req.key:
            req.reuse = held.voice  # same model: only the reference work is needed
        w = self._wanted
        if w is not None and (w.key, w.ref) == (req.key, req.ref):
            if not w.launched:
                self._wanted = req  # still queued: build it with the newest numbers
            return  # already on the way
        self._wanted = req
        what = (
            "Preparing the reference clip…"
            if req.reuse is not None
            else f"Loading {voice_label(req.key[0])}…"
        )
        log.info("voice request %s (ref %d): %s", req.key, req.ref, what)
        self.voiceLoading.emit(what)
        self.statusMessage.emit(what)
        if self._load_task is None:
            self._launch(req)

    def _launch(self, req: VoiceRequest) -> None:
        req.launched = True
        host = self.host
        task = Task(lambda _task: build_voice(host, req), name="voicegui-voice-load", parent=self)
        task.succeeded.connect(lambda voice: self._on_loaded(req, voice))
        task.failed.connect(lambda message, exc: self._on_load_failed(req, message))
        task.finished.connect(self._on_load_finished)
        self._load_task = task
        self._load_t0 = time.perf_counter()
        task.start()

    def _on_load_finished(self) -> None:
        task, self._load_task = self._load_task, None
        if task is not None:
            task.deleteLater()
        w = self._wanted
        if w is not None and not w.launched:
            self._launch(w)

    def _cancel_load(self) -> None:
        """Forget the wanted voice (a running worker finishes; its result is dropped)."""
        if self._wanted is not None:
            self._wanted = None
            self.voiceLoading.emit("")

    def _on_loaded(self, req: VoiceRequest, voice: Voice) -> None:
        if req is not self._wanted:
            log.info("dropping a superseded voice load %s", req.key)
            if voice is not req.reuse and (self._held is None or voice is not self._held.voice):
                voice.close()
            return
        self._wanted = None
        log.info(
            "voice %s ready in %.2f s on %s",
            req.key,
            time.perf_counter() - self._load_t0,
            getattr(voice, "provider", "?"),
        )
        held = HeldVoice(
            req.key, req.ref, voice, req.reference, req.settings.reference if req.ref else ""
        )
        eng = self.engine
        try:
            if eng is not None:
                if eng.voice is voice:
                    self._held = held  # re-prepared in place: the new reference already plays
                else:
                    t0 = time.perf_counter()
                    self._swap_in(held)
                    self.restarts += 1
                    log.info("%s in %.0f ms", RESTARTED, (time.perf_counter() - t0) * 1e3)
            else:
                if self._held is not None and self._held.voice is not voice:
                    self._drop_held()
                self._held = held
                if self._start_wanted:
                    self._start_wanted = False
                    self._start_with(voice)
        except Exception as exc:
            log.exception("using the loaded voice failed")
            self._engine_failed(f"Could not use the loaded voice: {exc}")
        self.voiceLoading.emit("")
        provider = str(getattr(voice, "provider", "CPU"))
        self.voiceReady.emit(req.key[0], provider)
        label = voice_label(req.key[0])
        self.statusMessage.emit(f"{label} ready on {provider}")
        for i, text in enumerate(getattr(voice, "warnings", None) or []):
            self.notice.emit("warning", f"{label}: {text}", f"voice-warning-{i}")
        if req.key[1] == "onnx" and "onnx" not in provider.lower():
            self.notice.emit(
                "warning",
                f"{label} was asked to run on ONNX Runtime but runs on {provider}.",
                "voice-warning-backend",
            )

    def _on_load_failed(self, req: VoiceRequest, message: str) -> None:
        if req is not self._wanted:
            return
        self._wanted = None
        self.voiceLoading.emit("")
        label = voice_label(req.key[0])
        log.warning("voice %s failed to load: %s", req.key, message)
        held = self._held
        if self.engine is not None and held is not None:
            keeps = voice_label(held.key[0])
            self.notice.emit(
                "error", f"{label} could not be loaded: {message}. {keeps} keeps running.", "voice"
            )
            self._revert_to(held)
        else:
            self.notice.emit("error", f"{label} could not be loaded: {message}", "voice")
            if self._start_wanted:
                self._start_wanted = False
                self.runningChanged.emit(False)
        self.statusMessage.emit(f"{label} could not be loaded")

    def _revert_to(self, held: HeldVoice) -> None:
        """Settings back to the voice that runs (after a failed load)."""
        name, backend, device, precision = held.key
        keep = {"backend": backend, "device": device, "precision": precision} if backend else {}
        new = replace(self._settings, voice=replace(self._settings.voice, voice=name, **keep))
        ref_changed = False
        if held.ref and held.ref != self._ref_serial:
            new = replace(new, voice=replace(new.voice, reference=held.ref_path))
            self._reference, self._ref_serial = held.reference, held.ref
            ref_changed = True
        self._settings = new
        if ref_changed:
            self._emit_reference()
        self.settingsChanged.emit(new)

    def _swap_in(self, held: HeldVoice) -> None:
        """Hand a ready voice to the running engine (restarts its streams, closes the old voice)."""
        eng = self.engine
        assert eng is not None
        eng.set_voice(held.voice, None)  # prepared already: no reference work in start()
        self._held = held
        eng.update(self._settings)
        self._voice_errors = 0

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and (self.engine is None or self.engine.voice is not held.voice):
            try:
                held.voice.close()
            except Exception:
                log.exception("closing the voice failed")

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
        try:
            missing = self.host.missing_devices(audio)
        except HostError as exc:
            missing = []
            log.warning("cannot check the preset's devices: %s", exc)
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
        if voice.voice == "rvc" and not voice.model:
            voice = self._keep_rvc_model(voice)
        ok, why = voice_available(voice.voice, voice)
        if not ok:
            notes.append(why)
        # bypass is a momentary switch, not part of a sound: keep the current state
        engine = replace(s.engine, bypass=self._settings.engine.bypass)
        self.apply(replace(s, audio=audio, voice=voice, engine=engine))
        for note in notes:
            self.notice.emit("warning", f"Preset '{preset.name}': {note}", f"preset:{note}")
        return notes

    def _keep_rvc_model(self, voice: VoiceSettings) -> VoiceSettings:
        """An RVC preset that names no voice model (a built-in one: tuning only) keeps the
        chosen model and index, at the model's own default pitch when it is a library voice."""
        current = self._settings.voice
        if not current.model:
            return voice
        from voicegui.voices.rvc import library

        voice = replace(voice, model=current.model, index=current.index)
        try:
            return replace(voice, pitch=library.get(current.model).pitch)
        except (library.LibraryError, OSError):  # given by path, or removed: the preset's pitch
            return voice

    # ---- engine lifecycle --------------------------------------------------------------------
    def _startable(self, quiet: bool = False) -> bool:
        s = self._settings
        info = VOICES.get(s.voice.voice)
        ok, why = voice_available(s.voice.voice, s.voice)
        if not ok:
            if not quiet:
                self.notice.emit("error", f"Cannot start: {why}", "engine")
            return False
        if info is not None and info.needs_reference and self._reference is None:
            if not quiet:
                self.notice.emit(
                    "error",
                    f"Cannot start: {info.label} needs a reference clip "
                    "(choose a file, drop one on the window, or record one).",
                    "engine",
                )
            return False
        return True

    def start(self) -> bool:
        """Start the engine. True when it runs now; False when it failed (a banner says why) or
        waits for a heavy voice loading in the background (``start_pending``)."""
        if self.engine is not None:
            return True
        if not self._startable():
            return False
        s = self._settings
        key, ref = _voice_key(s), self._wanted_ref(s)
        held = self._held
        if held is not None and not held.voice.valid:
            self._held = held = None  # it lived in an audio host that is gone
        if held is not None and (held.key, held.ref) == (key, ref):
            return self._start_with(held.voice)
        if heavy(s.voice.voice):
            self._start_wanted = True
            self._request(reuse=True)
            return False
        if held is not None:
            self._drop_held()
        try:
            with busy():
                self.host.ensure()  # a fresh audio host after a crash
                voice = self.host.create_voice(s.voice)
        except Exception as exc:
            log.exception("voice creation failed")
            self.notice.emit("error", f"Cannot start: {exc}", "engine")
            return False
        self._held = HeldVoice(key, 0, voice)
        return self._start_with(voice)

    def _start_with(self, voice: Voice) -> bool:
        """Start the engine with a built (and prepared) voice."""
        s = self._settings
        self.close_meter()
        t0 = time.perf_counter()
        try:
            with busy():
                eng = RemoteEngine(self.host, s, voice)
                eng.start()
        except Exception as exc:
            log.exception("engine start failed")
            if not heavy(s.voice.voice):  # a loaded neural voice stays held for the next try
                self._drop_held()
            self.notice.emit("error", f"Cannot start: {exc}", "engine")
            self.runningChanged.emit(False)
            self.open_meter()
            return False
        self.engine = eng
        self._voice_errors = 0
        if s.audio.virtual_mic:
            self.virtualMicChanged.emit(eng.info.get("virtual_mic") or {})
        log.info(
            "engine started in %.0f ms at %d Hz", (time.perf_counter() - t0) * 1e3, eng.sample_rate
        )
        self.runningChanged.emit(True)
        self.statusMessage.emit(f"Running at {eng.sample_rate} Hz")
        return True

    def cancel_start(self) -> None:
        """Do not start when the voice is ready (the load itself finishes unseen)."""
        if self._start_wanted:
            self._start_wanted = False
            self._cancel_load()
            self.runningChanged.emit(False)
            self.statusMessage.emit("Start cancelled")

    def stop(self, reason: str = "stopped") -> None:
        if self.engine is None:
            return
        self.record_stop()  # a recording ends with the audio it records
        eng, self.engine = self.engine, None
        t0 = time.perf_counter()
        try:
            eng.stop(reason)
        except Exception:
            log.exception("engine stop failed")
        held = self._held
        if held is not None and not heavy(held.key[0]):
            self._drop_held()  # light voices are rebuilt in no time; neural ones stay loaded
        log.info("engine stopped (%s) in %.0f ms", reason, (time.perf_counter() - t0) * 1e3)
        self.runningChanged.emit(False)
        self.statusMessage.emit(f"Stopped ({reason})" if reason != "stopped" else "Stopped")
        self.open_meter()

    def toggle(self) -> None:
        if self.engine is not None:
            self.stop()
        elif self._start_wanted:
            self.cancel_start()
        else:
            self.start()

    def restart(self) -> bool:
        self.stop("restarting")
        return self.start()

    def _engine_failed(self, message: str) -> None:
        self.stop("error")
        self.notice.emit("error", message, "engine")

    def shutdown(self) -> None:
        self._timer.stop()
        self._start_wanted = False
        self._cancel_load()
        self.stop("closing")
        self._drop_held()
        self.close_meter()
        task = self._load_task
        if task is not None and not task.join(10.0):  # a model load cannot be interrupted
            log.warning("a voice load was still running at shutdown")
        self.host.close()

    def refresh_voice(self) -> None:
        """Weights were installed or removed: load the chosen voice now if it was waiting."""
        if self.engine is not None:
            self._sync_voice()

    def forget_voice(self, name: str) -> None:
        """Release a held (stopped) voice of ``name``, e.g. before its weights are removed."""
        if self._held is not None and self._held.key[0] == name and self.engine is None:
            self._drop_held()

    # ---- recording the voice -----------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._recording

    def record_start(self, preset: str = "", path: str | Path | None = None) -> bool:
        """Record the voice (and the dry input when ``record_dry``) while the engine runs, to
        ``path`` or a file named by date and preset in the recordings folder."""
        if self.engine is None:
            self.notice.emit("info", "Start the voice changer to record it.", "recording")
            return False
        if self._recording:
            return True
        try:
            self.recording_path = self.host.record_start(
                path, self.record_dry, self.record_format, preset, self.record_folder
            )
        except HostError as exc:
            text = str(exc)
            if not text.startswith("Cannot record"):
                text = f"Cannot record: {text}"
            self.notice.emit("error", text, "recording")
            self.recordingChanged.emit({"running": False, "error": str(exc)})
            return False
        self._recording = True
        self._record_polls = 0
        self.recordingChanged.emit({"running": True, "elapsed": 0.0, "bytes": 0,
                                    "path": self.recording_path, "error": ""})  # fmt: skip
        self.statusMessage.emit(f"Recording to {self.recording_path}")
        return True

    def record_stop(self) -> dict | None:
        """Finish the recording; returns what it holds (path, seconds, bytes, dropped)."""
        if not self._recording:
            return self.last_recording
        self._recording = False
        try:
            summary = self.host.record_stop()
        except HostError as exc:
            log.warning("stopping the recording failed: %s", exc)
            summary = None
        summary = dict(summary or {"path": self.recording_path, "seconds": 0.0, "bytes": 0})
        summary["running"] = False
        self.last_recording = summary
        self.recordingChanged.emit(summary)
        self.statusMessage.emit(
            f"Recording saved: {summary.get('path', '')} ({summary.get('seconds', 0.0):.1f} s)"
        )
        return summary

    def toggle_record(self, preset: str = "") -> bool:
        """Start or stop recording; True when it records now."""
        if self._recording:
            self.record_stop()
            return False
        return self.record_start(preset)

    def _poll_recording(self) -> None:
        try:
            state = self.host.record_state()
        except HostError as exc:
            log.info("recording state: %s", exc)
            return
        if not state.get("running"):
            self._recording = False  # it stopped by itself (a full disk): the event says why
            self.last_recording = state
        self.recordingChanged.emit(state)

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
            self.host.ensure()
            self.meter = RemoteMeter(self.host, a.input, a.sample_rate, a.input_channel).open()
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
            if not self.host.alive:
                self._host_died(self.host._gone_message())
                return
            snap: MetricsSnapshot = eng.snapshot()
            if not snap.running:
                self._lost(snap.status or "the audio engine stopped")
                return
            self.metricsUpdated.emit(snap)
            if self._recording:
                self._record_polls += 1
                if self._record_polls % (POLL_HZ // 2) == 0:  # elapsed and size, ~2 Hz
                    self._poll_recording()
            self.levelsUpdated.emit(snap.input_db, snap.input_db)
            if snap.voice_errors > self._voice_errors:
                self._voice_errors = snap.voice_errors
                fallback = self._settings.engine.on_voice_error
                self.notice.emit(
                    "warning",
                    f"The voice failed {snap.voice_errors} time(s), last: "
                    f"{snap.last_error} (playing {FALLBACK_WORDS.get(fallback, fallback)} "
                    "meanwhile)",
                    "voice-error",
                )
        elif self.meter is not None:
            try:
                state = self.meter.state(2.0)
            except HostError as exc:
                state = {"active": False}
                log.info("meter: %s", exc)
            if not state["active"]:
                self.close_meter()
                self.meterStatus.emit("Input level unavailable: the input stream stopped")
                return
            stale = state["stale"]
            if stale != self._meter_stale:  # say it once when it happens, once when it is over
                self._meter_stale = stale
                self.meterStatus.emit("No audio from the input device for 2 s" if stale else "")
            self.levelsUpdated.emit(state["rms_db"], state["peak_db"])

    def _lost(self, reason: str) -> None:
        """The audio thread ended by itself: clean up, say why, offer a restart."""
        log.warning("engine stopped by itself: %s", reason)
        self.stop(reason)
        self.engineLost.emit(reason)

    # ---- audio thread -> GUI -----------------------------------------------------------------
    def _from_audio_thread(self, kind: str, message: str) -> None:
        # runs on the audio thread (or inside start()): only emit, the slot runs in the GUI thread
        self._engineEvent.emit(kind, message)

    def _host_died(self, reason: str) -> None:
        """The audio host process ended by itself: say why, keep the settings, offer a restart."""
        held, self._held = self._held, None  # its voices died with it
        if self._recording:  # the file holds what was flushed before the crash
            self._recording = False
            self.recordingChanged.emit({"running": False, "path": self.recording_path,
                                        "error": reason})  # fmt: skip
        if held is not None:
            held.voice.host._voices.pop(held.voice.id, None)
        if self._wanted is not None:
            self._wanted = None
            self.voiceLoading.emit("")
        if self.engine is not None:
            self._lost(reason)
        else:
            self.meter = None
            self.notice.emit("error", f"{reason}. It starts again with the voice changer.", "host")
            self.open_meter()  # a fresh host for the input meter

    @Slot(str, str)
    def _on_engine_event(self, kind: str, message: str) -> None:
        log.info("engine event %s: %s", kind, message)
        if kind == HOST_DIED:
            self._host_died(message)
            return
        if kind == "recording":  # the recording stopped by itself; the audio goes on
            self.notice.emit("error", message, "recording")
            if self._recording:
                self._poll_recording()
            return
        if kind == "progress":
            if self._wanted is not None:
                self.voiceLoading.emit(message)
            return
        if kind == "error":
            # the poll turns a dead audio thread into engineLost with this same reason
            if self.engine is not None and not self.engine.running:
                self._lost(message)
            return
        if kind == "remote":  # the Remote GPU server lost or back: one banner, replaced
            lost = "lost" in message
            self.notice.emit("warning" if lost else "info", message, "event:remote")
            return
        self.notice.emit("warning" if kind == "warning" else "info", message, f"event:{kind}")
