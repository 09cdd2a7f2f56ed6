"""The window's side of the audio host (engine/host.py): starts the process, calls it, reads its
metrics from shared memory, and hears its events.

Nothing here opens a stream or imports PortAudio, torch or onnxruntime: the proxies below
(``RemoteEngine``, ``RemoteVoice``, ``RemoteMeter``, ``RemoteRecorder``, ``RemotePlayer``) have the
interface of the objects they stand for, and every call crosses the pipe.

Calls are thread-safe (a reader thread matches answers to callers), so a worker thread can wait
seconds for a neural voice to load while the GUI thread keeps moving sliders.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicegui.audio.clips import SILENT_PEAK, RecorderError, save_clip
from voicegui.engine.metrics import MetricsSnapshot
from voicegui.engine.metrics_board import MetricsBoard, MetricsView
from voicegui.settings import DeviceRef, Settings, VoiceSettings

log = logging.getLogger(__name__)

HOST_MODULE = "voicegui.engine.host"  # imported in the child only (see _host_main)
START_TIMEOUT = 60.0  # s for a fresh process to answer (imports numpy, PortAudio, ...)
CALL_TIMEOUT = 30.0
HOST_DIED = "host-died"  # event kind when the process ends without being asked to


class HostError(RuntimeError):
    """The audio host refused a call; ``kind`` names the error it raised there."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class HostGone(HostError):
    """The audio host is not running (it crashed, was killed, or was never started)."""


def _host_main(conn: Any, board_name: str, service: str | None) -> None:
    # runs in the child process: the window's process never imports the host module
    host = importlib.import_module(HOST_MODULE)
    host.serve(conn, board_name, service or host.SERVICE)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"it was killed ({name})"
    return f"it exited with code {code}"


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    result: Any = None


class AudioHost:
    """One audio host process at a time; ``start`` again after it died gives a fresh one."""

    def __init__(
        self, on_event: Callable[[str, str], None] | None = None, service: str | None = None
    ) -> None:
        self.on_event = on_event or (lambda kind, message: None)
        self.service = service  # "module:Class" serving the host (None: the product's)
        self.board = MetricsBoard(create=True)
        self.metrics = MetricsView(self.board)
        self._proc: Any = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._dead = True
        self.exit_reason = ""
        self.starts = 0
        self._voices: dict[int, RemoteVoice] = {}
        self._talk: tuple[bool, bool, bool] | None = None  # push-to-talk, held, muted (last sent)

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._dead and self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> AudioHost:
        """Start the process (returns at once; the first call waits until it is ready)."""
        if self.alive:
            return self
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_host_main, args=(theirs, self.board.name, self.service),
            name="voicegui-audio-host",
            daemon=True,
        )  # fmt: skip
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours
        self._dead, self._closing, self.exit_reason = False, False, ""
        self._voices.clear()
        self.starts += 1
        if self._talk is not None:
            # a fresh process after a crash: push-to-talk and mute hold before any engine starts
            # (commands run in order; the answer to this one is not waited for)
            ours.send((next(self._ids), "talk", self._talk))
        threading.Thread(
            target=self._read, args=(proc, ours), name="voicegui-host-reader", daemon=True
        ).start()
        log.info("audio host started (pid %d)", proc.pid)
        return self

    def ensure(self) -> AudioHost:
        """Running and answering (starts a fresh process after a crash)."""
        if not self.alive:
            self.start()
        self.call("ping", timeout=START_TIMEOUT)
        return self

    def close(self, timeout: float = 5.0) -> None:
        proc, self._closing = self._proc, True
        if proc is not None and self.alive:
            try:
                with self._send_lock:
                    self._conn.send(None)
            except Exception:
                pass
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        self._dead = True
        self.board.close()

    def kill(self) -> None:
        """End the process the hard way (tests: a crashed host)."""
        if self._proc is not None:
            self._proc.kill()

    # ---- calls -------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, timeout: float | None = CALL_TIMEOUT) -> Any:
        if self._dead or self._proc is None:
            raise HostGone(self._gone_message())
        msg_id = next(self._ids)
        pending = _Pending()
        self._pending[msg_id] = pending
        try:
            with self._send_lock:
                self._conn.send((msg_id, method, args))
        except (OSError, ValueError) as exc:
            self._pending.pop(msg_id, None)
            raise HostGone(self._gone_message()) from exc
        if not pending.done.wait(timeout):
            self._pending.pop(msg_id, None)
            raise HostError(f"the audio host did not answer '{method}' within {timeout:.0f} s")
        if not pending.ok:
            if pending.result is None:
                raise HostGone(self._gone_message())
            kind, message = pending.result
            raise HostError(message, kind)
        return pending.result

    def _gone_message(self) -> str:
        why = self.exit_reason or "it is not running"
        return f"The audio engine process stopped: {why}"

    def _read(self, proc: Any, conn: Any) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an answer that cannot be unpickled: say so, keep reading
                log.exception("unreadable message from the audio host")
                continue
            if msg[0] == "event":
                try:
                    self.on_event(msg[1], msg[2])
                except Exception:
                    log.exception("event handler failed")
                continue
            pending = self._pending.pop(msg[0], None)
            if pending is not None:
                pending.ok, pending.result = msg[1], msg[2]
                pending.done.set()
        if proc is not self._proc:
            return  # an old process that was replaced
        proc.join(2.0)
        self._dead = True
        self.exit_reason = describe_exit(proc.exitcode)
        for pending in list(self._pending.values()):
            pending.ok, pending.result = False, None
            pending.done.set()
        self._pending.clear()
        if not self._closing:
            log.warning("audio host ended: %s", self.exit_reason)
            self.on_event(HOST_DIED, self._gone_message())

    # ---- what the window asks for ------------------------------------------------------------
    def devices(self, rescan: bool = False) -> tuple[list[str], list[Any], str]:
        """(host API names, devices, the default input's host API), as PortAudio sees them."""
        return self.call("rescan" if rescan else "devices", timeout=START_TIMEOUT)

    def missing_devices(self, audio: Any) -> list[str]:
        return self.call("missing_devices", audio, timeout=START_TIMEOUT)

    def create_voice(self, settings: VoiceSettings) -> RemoteVoice:
        return self._voice(self.call("create_voice", settings))

    def build_voice(
        self,
        settings: VoiceSettings,
        reference: tuple[np.ndarray, int] | None,
        reuse: RemoteVoice | None,
        needs_reference: bool,
    ) -> RemoteVoice:
        info = self.call(
            "build_voice", settings, reference, reuse.id if reuse is not None else None,
            needs_reference, timeout=None,
        )  # fmt: skip
        voice = self._voice(info)
        voice.compute_devices = tuple(info.get("compute_devices", ()))
        return voice

    def voice_for(
        self, settings: VoiceSettings, reference: tuple[np.ndarray, int] | None = None
    ) -> RemoteVoice:
        """The voice ``settings`` names, for a run without a window: built when it is heavy (see
        ``catalog.heavy``), else created."""
        from voicegui.voices.catalog import heavy

        if heavy(settings.voice):
            return self.build_voice(settings, reference, None, reference is not None)
        return self.create_voice(settings)

    def _voice(self, info: dict) -> RemoteVoice:
        voice = self._voices.get(info["id"])
        if voice is None:
            voice = RemoteVoice(self, info["id"], info["name"])
            self._voices[info["id"]] = voice
        voice.provider, voice.warnings = info["provider"], info["warnings"]
        return voice

    def probe_devices(self) -> tuple[str, ...]:
        return tuple(self.call("probe_devices", timeout=None))

    def snapshot(self) -> MetricsSnapshot:
        self.metrics.refresh()
        return self.metrics.snapshot

    # ---- push-to-talk, mute, bypass (from any thread, e.g. a hotkey listener) ----------------
    def set_talk(self, push_to_talk: bool, held: bool, muted: bool) -> dict:
        """Gate the output: silent unless the push-to-talk key is held (when push-to-talk is on),
        and silent while muted. Kept here and sent again to a restarted audio host."""
        self._talk = (bool(push_to_talk), bool(held), bool(muted))
        return self.call("talk", *self._talk)

    def set_bypass(self, on: bool) -> bool:
        """Bypass on or off in the running engine now; False when no engine runs."""
        return bool(self.call("engine_bypass", bool(on)))

    # ---- "Send to apps": the virtual microphone (Linux) ---------------------------------------
    def virtual_mic(self, on: bool, audio: Any = None) -> dict:
        """Make (or reuse) the virtual microphone, or remove it; ``audio``: the rate and latency
        to measure a new one's latency with. Returns its state: on, message (what to pick in
        the other program), error, measured (see audio/route_latency.py). Raises HostError
        saying what is missing (no PipeWire or PulseAudio, ...)."""
        return self.call("virtual_mic", on, audio, timeout=START_TIMEOUT)

    def virtual_mic_measure(self, audio: Any = None) -> dict:
        """Measure the virtual microphone's latency again (not while the voice plays into it)."""
        return self.call("virtual_mic_measure", audio, timeout=START_TIMEOUT)

    # ---- recording the voice (the engine must run) -------------------------------------------
    def record_start(
        self, path: str | Path | None = None, with_dry: bool = False, fmt: str = "wav",
        preset: str = "", folder: str | Path = "",
    ) -> str:  # fmt: skip
        """Start recording the voice to ``path``, or to a file named by date and preset in
        ``folder`` (default: the recordings folder); returns the file's path (raises HostError
        saying why not, e.g. an unwritable folder)."""
        return self.call(
            "record_start", str(path) if path else None, with_dry, fmt, preset, str(folder or "")
        )

    def record_stop(self) -> dict | None:
        """Finish the recording: path, dry_path, seconds, frames, bytes, dropped, error."""
        return self.call("record_stop")

    def record_state(self) -> dict:
        """running, elapsed (s), bytes, path, error (why it stopped by itself)"""
        return self.call("record_state")


class RemoteVoice:
    """A voice that lives in the audio host; the same object for the same voice there."""

    def __init__(self, host: AudioHost, vid: int, name: str) -> None:
        self.host, self.id, self.name = host, vid, name
        self.provider = "CPU"
        self.warnings: list[str] = []
        self.compute_devices: tuple[str, ...] = ()
        self.started_with = host.starts  # a voice dies with its process

    @property
    def valid(self) -> bool:
        return self.host.alive and self.started_with == self.host.starts

    def close(self) -> None:
        if self.valid:
            with contextlib.suppress(HostError):
                self.host.call("close_voice", self.id)
        self.host._voices.pop(self.id, None)


class RemoteEngine:
    """The real-time engine in the audio host, with the interface the window uses."""

    def __init__(self, host: AudioHost, settings: Settings, voice: RemoteVoice) -> None:
        self.host = host
        self.settings = settings.validated()
        self._voice = voice
        self.sample_rate = self.settings.audio.sample_rate
        self.rate_note: str | None = None
        self.info: dict = {}

    def _apply(self, info: dict) -> None:
        self.info = info
        if "sample_rate" in info:  # absent once the engine has stopped
            self.sample_rate, self.rate_note = info["sample_rate"], info["rate_note"]

    def refresh(self) -> dict:
        """The engine's state in the host now (streams, devices, the settings it applies)."""
        self._apply(self.host.call("engine_info"))
        return self.info

    @property
    def stream_opens(self) -> int:
        """How often the host opened the streams (a restart opens them again)."""
        return int(self.refresh().get("stream_opens", 0))

    def live_settings(self) -> Settings | None:
        """The settings the block thread applies now (changes land between blocks)."""
        return self.refresh().get("live_settings")

    def test_signal(self, audio: np.ndarray | None) -> None:
        """Feed ``audio`` (looped) instead of the microphone; None: back to the microphone."""
        self.host.call("engine_test_signal", audio)

    @property
    def voice(self) -> RemoteVoice:
        return self._voice

    @property
    def metrics(self) -> MetricsView:
        return self.host.metrics

    @property
    def running(self) -> bool:
        return self.host.alive and self.snapshot().running

    def snapshot(self) -> MetricsSnapshot:
        return self.host.snapshot()

    def start(self) -> None:
        self._apply(self.host.call("engine_start", self.settings, self._voice.id))

    def update(self, settings: Settings) -> bool:
        restarted, info = self.host.call("engine_update", settings)
        self.settings = settings.validated()
        self._apply(info)
        return bool(restarted)

    def set_voice(self, voice: RemoteVoice, reference: Any = None) -> None:
        self._apply(self.host.call("engine_set_voice", voice.id))
        self._voice = voice

    def stop(self, reason: str = "stopped") -> None:
        if self.host.alive:
            try:
                self.host.call("engine_stop", reason)
            except HostError:
                log.exception("stopping the engine failed")


class RemoteMeter:
    """The input meter (while stopped), measured in the audio host."""

    def __init__(self, host: AudioHost, device: DeviceRef, sample_rate: int, channel: int) -> None:
        self.host, self.device_ref = host, device
        self.sample_rate, self.channel = sample_rate, channel
        self.device: Any = None
        self._open = False

    def open(self) -> RemoteMeter:
        self.device = self.host.call("meter_open", self.device_ref, self.sample_rate, self.channel)
        self._open = True
        return self

    def state(self, stale_after: float = 2.0) -> dict:
        if not self._open or not self.host.alive:
            return {"active": False, "stale": False, "rms_db": -120.0, "peak_db": -120.0,
                    "callbacks": 0}  # fmt: skip
        return self.host.call("meter_state", stale_after)

    @property
    def active(self) -> bool:
        return bool(self.state()["active"])

    @property
    def callbacks(self) -> int:
        return int(self.state()["callbacks"])

    def stale(self, seconds: float = 1.0) -> bool:
        return bool(self.state(seconds)["stale"])

    def close(self) -> None:
        if self._open and self.host.alive:
            with contextlib.suppress(HostError):
                self.host.call("meter_close")
        self._open = False


class RemoteRecorder:
    """Records a reference clip in the audio host; ``save`` writes it here."""

    def __init__(
        self, host: AudioHost, device: DeviceRef, seconds: float, sample_rate: int, channel: int
    ) -> None:
        if not 0.5 <= seconds <= 60.0:
            raise RecorderError("a reference recording must be between 0.5 and 60 seconds")
        self.host, self.device_ref = host, device
        self.seconds, self.sample_rate, self.channel = float(seconds), sample_rate, channel
        self._audio: np.ndarray | None = None
        self._final: dict | None = None

    def start(self) -> RemoteRecorder:
        try:
            self.sample_rate = self.host.call(
                "recorder_start", self.device_ref, self.seconds, self.sample_rate, self.channel
            )
        except HostError as exc:
            raise RecorderError(str(exc)) from exc
        return self

    def _state(self) -> dict:
        if self._final is not None:
            return self._final
        return self.host.call("recorder_state")

    @property
    def frames(self) -> int:
        return int(self._state()["frames"])

    @property
    def progress(self) -> float:
        return float(self._state()["progress"])

    @property
    def finished(self) -> bool:
        return bool(self._state()["finished"])

    @property
    def recording(self) -> bool:
        return bool(self._state()["recording"])

    @property
    def peak(self) -> float:
        return float(self._state()["peak"])

    def stop(self) -> np.ndarray:
        if self._audio is None:
            final = self._state()
            self._audio = self.host.call("recorder_stop")
            self._final = {**final, "recording": False, "frames": len(self._audio)}
        return self._audio

    @property
    def audio(self) -> np.ndarray:
        return self.stop().copy()

    @property
    def silent(self) -> bool:
        return self.peak < SILENT_PEAK

    def save(self, path: Path | None = None) -> Path:
        return save_clip(self.audio, self.sample_rate, path)


class RemotePlayer:
    """Plays a clip once in the audio host."""

    def __init__(self, host: AudioHost, audio: np.ndarray, sample_rate: int, device: DeviceRef):
        self.host, self.audio, self.sample_rate, self.device_ref = host, audio, sample_rate, device

    def start(self) -> RemotePlayer:
        try:
            self.host.call("player_start", self.audio, self.sample_rate, self.device_ref)
        except HostError as exc:
            raise RecorderError(str(exc)) from exc
        return self

    @property
    def progress(self) -> float:
        return float(self.host.call("player_state")["progress"])

    @property
    def finished(self) -> bool:
        return bool(self.host.call("player_state")["finished"])

    def stop(self) -> None:
        if self.host.alive:
            with contextlib.suppress(HostError):
                self.host.call("player_stop")
