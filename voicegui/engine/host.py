"""The audio host process: owns PortAudio, the streams, the input meter, reference recording and
the voices (torch and onnxruntime load here, never in the window's process).

The window (engine/client.py) sends commands over a pipe: ``(id, method, args)``, answered by
``(id, ok, result)``; events (errors, device loss, load progress) go the other way as
``("event", kind, message)``. Metrics go through shared memory (engine/metrics_board.py), published
~30 times a second by a thread of their own, so neither side waits for the other.

When the window's end of the pipe closes (the window quit or was killed), the host stops the
streams, releases PortAudio (its JACK ports go with it) and exits.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from voicegui.engine.loopback import clicks_through, probe_open_loop
from voicegui.engine.metrics import Metrics
from voicegui.engine.metrics_board import MetricsBoard
from voicegui.engine.preload import WAIT_AT_MOST, Preload
from voicegui.engine.send_to_apps import SendToApps
from voicegui.engine.talk import TalkControl
from voicegui.settings import AudioSettings, DeviceRef, Settings, VoiceSettings

log = logging.getLogger("voicegui.host")

PUBLISH_HZ = 30
# how long another thread may run Python before it must hand the interpreter lock to a waiting
# block thread (Python's default is 5 ms, half the block thread's slack at 10 ms blocks and
# 256-frame periods); handing over more often costs the other thread a few percent, and only
# while both want the lock
SWITCH_INTERVAL = 0.0005
# slow commands, answered from a thread of their own. Those that load libraries (which start
# threads of their own) run at ordinary priority; the others keep the command thread's real-time
# helper priority from their first line: an ordinary thread that runs Python while the engine
# plays (imports, set-up) can be preempted by a busy program while it holds the interpreter lock,
# and the block thread then waits for it (measured: the engine's first block took up to 10 ms
# instead of 0.5 when a loopback measurement started with it, under two busy processes)
THREADED_ORDINARY = {"build_voice", "probe_devices"}
THREADED_HELPER = {"measure_loopback"}


class HostService:
    def __init__(self, conn: Any, board: MetricsBoard) -> None:
        self.conn, self.board = conn, board
        self._send_lock = threading.Lock()
        self._lock = threading.RLock()  # engine, voices, meter, recorder: one command at a time
        self.engine: Any = None
        self.voices: dict[int, Any] = {}
        self._next_voice = 1
        self.meter: Any = None
        self.recorder: Any = None
        self.player: Any = None
        self.take: Any = None  # the recording of the voice (engine/recording.py)
        self.last_take: dict | None = None  # what the last one recorded
        self.talk = TalkControl()  # push-to-talk and mute: outlives engines and restarts
        self.idle_metrics = Metrics()
        self.ports_before: set[str] | None = None
        self.send_to_apps = SendToApps()  # the virtual microphone (Linux)
        self._published_at = 0.0
        self.preload = Preload()  # the installed neural libraries, imported at start-up
        self._idle = threading.Event()  # no engine runs: the publisher thread works
        self._idle.set()
        self._stop = threading.Event()

    # ---- plumbing ----------------------------------------------------------------------------
    def _send(self, msg: tuple) -> None:
        with self._send_lock:
            try:
                self.conn.send(msg)
            except (OSError, EOFError, ValueError):
                self._stop.set()  # the window is gone

    def event(self, kind: str, message: str) -> None:
        if kind == "error":
            self.publish()  # the window reads "stopped" and the reason along with the event
        self._send(("event", kind, message))

    def _publish_loop(self) -> None:
        """Publishes while no engine runs; a running engine publishes from its block thread, and
        this thread then sleeps: any other thread that takes the GIL while the engine runs can be
        preempted by a busy program while holding it, and the block thread would wait for it."""
        while not self._stop.is_set():
            self._idle.wait()
            if self._stop.wait(1.0 / PUBLISH_HZ):
                break
            self.publish()

    def publish(self) -> None:
        eng = self.engine
        try:
            self.board.publish(eng.metrics if eng is not None else self.idle_metrics)
        except Exception:
            log.exception("publishing metrics failed")

    def _publish_from_block_thread(self) -> None:
        now = time.monotonic()
        if now - self._published_at >= 1.0 / PUBLISH_HZ:
            self._published_at = now
            self.publish()

    def _handle(self, msg_id: int, method: str, args: tuple) -> None:
        try:
            result = getattr(self, "do_" + method)(*args)
        except Exception as exc:
            log.info("%s failed: %s: %s", method, type(exc).__name__, exc)
            self._send((msg_id, False, (type(exc).__name__, str(exc))))
        else:
            self._send((msg_id, True, result))

    def _handle_normal(self, msg_id: int, method: str, args: tuple) -> None:
        """A slow command on a thread of its own, at ordinary priority (see normal_thread), with
        a larger share of the CPU than busy programs (see favour_ordinary_thread)."""
        from voicegui.engine.priority import favour_ordinary_thread, normal_thread

        normal_thread()
        how = favour_ordinary_thread()
        log.debug("%s runs at ordinary priority%s", method, f", {how}" if how else "")
        self._handle(msg_id, method, args)

    def run(self) -> None:
        from voicegui.engine.priority import raise_helper_thread

        threading.Thread(target=self._publish_loop, name="voicegui-metrics", daemon=True).start()
        self.preload.start()
        raise_helper_thread()  # commands are short; see raise_helper_thread
        while not self._stop.is_set():
            try:
                # blocks without waking: the window's death closes the pipe, which ends this
                msg = self.conn.recv()
            except (EOFError, OSError):
                break  # the window is gone
            if msg is None:
                break  # asked to quit
            msg_id, method, args = msg
            if method in THREADED_ORDINARY or method in THREADED_HELPER:
                # a thread inherits its creator's (this thread's) scheduling policy
                handle = self._handle_normal if method in THREADED_ORDINARY else self._handle
                threading.Thread(target=handle, args=(msg_id, method, args), daemon=True).start()
            else:
                with self._lock:
                    self._handle(msg_id, method, args)
        self.shutdown()

    def shutdown(self) -> None:
        self._stop.set()
        self._idle.set()
        with self._lock:
            for closer in (self.do_engine_stop, self.do_meter_close, self.do_recorder_stop,
                           self.do_player_stop, self.send_to_apps.quit):  # fmt: skip
                try:
                    closer()
                except Exception:
                    log.exception("closing failed")
            for voice in self.voices.values():
                with contextlib.suppress(Exception):
                    voice.close()
            self.voices.clear()
        try:
            from voicegui.audio.backend import terminate

            terminate()  # PortAudio lets go of its JACK client (ports) here
        except Exception:
            pass
        self.board.close()

    # ---- devices -----------------------------------------------------------------------------
    def do_ping(self) -> int:
        return os.getpid()

    def do_devices(self) -> tuple[list[str], list[Any], str]:
        """Host API names, devices, and the host API of the system's default input."""
        from voicegui.audio.devices import default_device, hostapi_names, list_devices

        try:
            default_api = default_device("input").hostapi
        except Exception:
            default_api = ""
        return hostapi_names(), list_devices(), default_api

    def do_rescan(self) -> tuple[list[str], list[Any], str]:
        from voicegui.audio.backend import reinitialize

        if self.engine is not None:
            raise RuntimeError("stop the voice changer before rescanning devices")
        self.do_meter_close()
        reinitialize()
        return self.do_devices()

    def do_missing_devices(self, audio: AudioSettings) -> list[str]:
        from voicegui.audio.devices import missing_devices

        return missing_devices(audio)

    # ---- voices ------------------------------------------------------------------------------
    def _register(self, voice: Any) -> dict:
        with self._lock:
            vid = self._next_voice
            self._next_voice += 1
            self.voices[vid] = voice
        return _voice_info(vid, voice)

    def make_voice(self, settings: VoiceSettings, progress: Any = None) -> Any:
        from voicegui.voices.registry import create_voice

        return create_voice(settings, progress=progress)

    def do_create_voice(self, settings: VoiceSettings) -> dict:
        return self._register(self.make_voice(settings))

    def do_build_voice(
        self,
        settings: VoiceSettings,
        reference: tuple[np.ndarray, int] | None,
        reuse: int | None,
        needs_reference: bool,
    ) -> dict:
        """Build a voice (or take one already here) and prepare it with the reference clip."""
        from voicegui.voices.base import VoiceError

        voice = self.voices.get(reuse) if reuse is not None else None
        fresh = voice is None
        if fresh:

            def progress(stage: str, i: int, n: int) -> None:
                self.event("progress", f"{stage} ({i}/{n})" if n else stage)

            voice = self.make_voice(replace(settings, reference=""), progress=progress)
        try:
            if reference is not None:
                voice.prepare(*reference)
            elif needs_reference:
                raise VoiceError(f"{settings.voice} needs a reference clip")
        except BaseException:
            if fresh:
                voice.close()
            raise
        info = self._register(voice) if fresh else _voice_info(reuse or 0, voice)
        info["compute_devices"] = self.do_probe_devices()
        return info

    def do_close_voice(self, vid: int) -> None:
        voice = self.voices.pop(vid, None)
        if voice is not None and (self.engine is None or self.engine.voice is not voice):
            voice.close()

    def do_probe_devices(self) -> tuple[str, ...]:
        from voicegui.voices.compute_devices import probe_devices

        return probe_devices()

    # ---- the engine --------------------------------------------------------------------------
    def _engine_info(self) -> dict:
        eng = self.engine
        if eng is None:
            return {"running": False}
        io = eng.io
        return {
            "running": eng.running,
            "sample_rate": eng.sample_rate,
            "rate_note": eng.rate_note,
            "stream_opens": eng.stream_opens,
            "streams": len(io.streams) if io is not None else 0,
            "input": io.input_dev if io is not None else None,
            "output": io.output_dev if io is not None else None,
            # what the block thread applies now (settings change between blocks)
            "live_settings": eng.proc.settings if eng.proc is not None else None,
            "block_dev": eng.proc.block_dev if eng.proc is not None else 0,
            "virtual_mic": self.send_to_apps.state,
        }

    def do_engine_start(self, settings: Settings, vid: int) -> dict:
        from voicegui.engine.realtime import RealtimeEngine

        self.do_engine_stop()
        self.do_meter_close()  # the engine takes the microphone
        eng = RealtimeEngine(settings, self.voices[vid], reference=None, on_event=self.event)
        eng.after_block = self._publish_from_block_thread
        eng.talk = self.talk
        eng.route_latency = self.send_to_apps.before_streams(settings.audio)
        on_jack = settings.audio.input.hostapi == JACK_HOSTAPI
        # the JACK ports that exist before this engine's (for the loopback measurement)
        self.ports_before = set(_jack_ports()) if on_jack else None
        if not self.preload.done:
            # its imports hold the interpreter lock for up to 150 ms at a time (see preload.py)
            log.info("the engine waits for the start-up import of the neural libraries")
            self.preload.wait()
        # everything loaded so far (modules, the voice's weights) lives as long as the engine:
        # keep it out of the collector's full passes, which run on whichever thread allocates
        # (the block thread too) and would walk it all, holding the GIL
        gc.collect()
        gc.freeze()
        eng.start()
        self.engine = eng
        self._idle.clear()
        self.publish()  # the window sees "running" as soon as it hears back
        return self._engine_info()

    def do_engine_update(self, settings: Settings) -> tuple[bool, dict]:
        eng = self.engine
        if eng is None:
            raise RuntimeError("the engine is not running")
        eng.route_latency = self.send_to_apps.before_streams(settings.audio, check=False)
        restarted = eng.update(settings)
        self.send_to_apps.after_streams(settings.audio)
        self._check_take_rate()
        self.publish()
        return restarted, self._engine_info()

    def do_engine_set_voice(self, vid: int) -> dict:
        eng = self.engine
        if eng is None:
            raise RuntimeError("the engine is not running")
        eng.set_voice(self.voices[vid], None)
        self._check_take_rate()
        self.publish()
        return self._engine_info()

    def do_measure_loopback(
        self, seconds: float, clicks: int, external: bool = False, tone_hz: float = 0.0
    ) -> dict:
        """Loop the engine's JACK output into its input and time clicks through it; with
        ``external``, the output already returns outside the app (a loopback cable, a virtual
        microphone): time clicks and send a tone through it (loopback.probe_open_loop)."""
        from voicegui.audio import jack

        eng = self.engine
        if external:
            if eng is None:
                raise RuntimeError("the loopback needs the engine running")
            return probe_open_loop(eng, seconds, clicks, tone_hz)
        if eng is None or self.ports_before is None:
            raise RuntimeError("the loopback needs the engine running on JACK")
        ins, outs = jack.client_ports()
        ours = self.ports_before
        jack.loop_back([p for p in ins if p not in ours], [p for p in outs if p not in ours])
        return clicks_through(eng, seconds, clicks)

    def do_engine_stop(self, reason: str = "stopped") -> None:
        self.do_record_stop()  # a recording ends with the audio it records
        eng, self.engine = self.engine, None
        self._idle.set()
        if eng is not None:
            eng.stop(reason)
            self.idle_metrics = eng.metrics  # the graph keeps the last run's picture
            self.publish()

    def do_talk(self, push_to_talk: bool, held: bool, muted: bool) -> dict:
        """Push-to-talk and mute (the output gate ramps to it within the next block)."""
        self.talk.set(push_to_talk, held, muted)
        return self.talk.state()

    def do_engine_bypass(self, on: bool) -> bool:
        """Bypass on or off between blocks (a hotkey); False when no engine runs."""
        eng = self.engine
        if eng is None:
            return False
        s = eng.settings
        eng.update(replace(s, engine=replace(s.engine, bypass=bool(on))))
        return True

    def do_engine_info(self) -> dict:
        return self._engine_info()

    def do_engine_test_signal(self, audio: np.ndarray | None) -> None:
        """Replace the microphone with ``audio`` (looped), e.g. a test phrase; None: the mic."""
        eng = self.engine
        if eng is None:
            raise RuntimeError("the engine is not running")
        eng.block_hook = None if audio is None else _looping_input(audio)

    # ---- "Send to apps": the virtual microphone (Linux; engine/send_to_apps.py) -------------
    def _plays_into_virtual_mic(self) -> bool:
        return self.engine is not None and self.engine.settings.audio.virtual_mic

    def do_virtual_mic(self, on: bool, audio: AudioSettings | None = None) -> dict:
        return self.send_to_apps.switch(on, audio, self._plays_into_virtual_mic())

    def do_virtual_mic_state(self) -> dict:
        return self.send_to_apps.state

    def do_virtual_mic_measure(self, audio: AudioSettings | None = None) -> dict:
        return self.send_to_apps.measure(audio, self._plays_into_virtual_mic())

    # ---- recording the voice -----------------------------------------------------------------
    def do_record_start(
        self,
        path: str | None = None,
        with_dry: bool = False,
        fmt: str = "wav",
        preset: str = "",
        folder: str = "",
    ) -> str:
        """Record the output (and with ``with_dry`` the input, to a "-dry" file alongside) to
        ``path``, or to a file named by date and preset in ``folder`` (default: the recordings
        folder)."""
        from voicegui.engine.recording import TakeRecorder, default_path

        eng = self.engine
        if eng is None or not eng.running:
            raise RuntimeError("start the voice changer before recording")
        self.do_record_stop()
        target = Path(path) if path else default_path(preset, fmt, folder=folder)
        delay = eng.proc.wet_delay_dev() if with_dry and eng.proc is not None else 0
        take = TakeRecorder(
            target, eng.sample_rate, with_dry, on_error=self._take_failed, dry_delay=delay
        )
        self.take = take.start()
        eng.tap = take.feed
        return str(target)

    def _take_failed(self, message: str) -> None:
        # the writer thread: the file is closed and valid; the audio goes on
        self.event("recording", message)

    def do_record_stop(self) -> dict | None:
        """Finish the recording; what it holds (path, seconds, bytes, dropped, error)."""
        take, self.take = self.take, None
        if take is None:
            return self.last_take
        eng = self.engine
        if eng is not None and eng.tap == take.feed:
            eng.tap = None
        self.last_take = take.stop()
        return self.last_take

    def do_record_state(self) -> dict:
        take = self.take
        if take is not None:
            return take.state()
        last = dict(self.last_take or {"elapsed": 0.0, "bytes": 0, "path": "", "error": ""})
        last["running"] = False
        return last

    def _check_take_rate(self) -> None:
        take, eng = self.take, self.engine
        if take is None or eng is None or take.sample_rate == eng.sample_rate:
            return
        summary = self.do_record_stop() or {}
        self.event(
            "recording",
            f"Recording stopped: the sample rate changed to {eng.sample_rate} Hz. "
            f"{summary.get('seconds', 0.0):.1f} s are saved in {Path(take.path).name}.",
        )

    # ---- diagnostics (the tests drive failures through these) --------------------------------
    def do_debug_abort_streams(self) -> None:
        """Abort the open streams as a vanished device would."""
        if self.engine is not None and self.engine.io is not None:
            for stream in self.engine.io.streams:
                stream.abort()

    def do_debug_preload(self) -> dict | None:
        """What the start-up import of the neural libraries is doing (None: nothing to import)."""
        p = self.preload
        p.decided.wait(WAIT_AT_MOST)
        if not p.voices:
            return None
        return {"voices": p.voices, "modules": p.modules, "done": p.done, "seconds": p.seconds,
                "failed": p.failed}  # fmt: skip

    def do_debug_event(self, kind: str, message: str) -> None:
        """Send an event from another thread, as the block thread does."""
        t = threading.Thread(target=self.event, args=(kind, message))
        t.start()
        t.join()

    # ---- input meter -------------------------------------------------------------------------
    def do_meter_open(self, device: DeviceRef, rate: int, channel: int) -> Any:
        from voicegui.audio.meter import InputMeter

        self.do_meter_close()
        self.meter = InputMeter(device, rate, channel).open()
        return self.meter.device

    def do_meter_state(self, stale_after: float = 2.0) -> dict:
        m = self.meter
        if m is None:
            return {"active": False, "stale": False, "rms_db": -120.0, "peak_db": -120.0,
                    "callbacks": 0}  # fmt: skip
        return {"active": m.active, "stale": m.stale(stale_after), "rms_db": m.rms_db,
                "peak_db": m.peak_db, "callbacks": m.callbacks}  # fmt: skip

    def do_meter_close(self) -> None:
        meter, self.meter = self.meter, None
        if meter is not None:
            meter.close()

    # ---- reference recording and playback ----------------------------------------------------
    def do_recorder_start(self, device: DeviceRef, seconds: float, rate: int, channel: int) -> int:
        from voicegui.audio.recorder import Recorder

        self.do_recorder_stop()
        self.recorder = Recorder(device, seconds, rate, channel).start()
        return self.recorder.sample_rate

    def do_recorder_state(self) -> dict:
        r = self.recorder
        if r is None:
            return {"frames": 0, "progress": 0.0, "finished": False, "recording": False,
                    "peak": 0.0}  # fmt: skip
        return {"frames": r.frames, "progress": r.progress, "finished": r.finished,
                "recording": r.recording, "peak": r.peak}  # fmt: skip

    def do_recorder_stop(self) -> np.ndarray:
        r = self.recorder
        if r is None:
            return np.zeros(0, dtype=np.float32)
        audio = r.stop()
        return audio

    def do_player_start(self, audio: np.ndarray, rate: int, device: DeviceRef) -> None:
        from voicegui.audio.recorder import Player

        self.do_player_stop()
        self.player = Player(audio, rate, device).start()

    def do_player_state(self) -> dict:
        p = self.player
        if p is None:
            return {"progress": 1.0, "finished": True}
        return {"progress": p.progress, "finished": p.finished}

    def do_player_stop(self) -> None:
        player, self.player = self.player, None
        if player is not None:
            player.stop()


JACK_HOSTAPI = "JACK Audio Connection Kit"


def _jack_ports() -> list[str]:
    from voicegui.audio import jack

    try:
        return jack.ports()
    except Exception:
        return []


def _looping_input(audio: np.ndarray):
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    pos = [0]

    def hook(buf: np.ndarray) -> None:
        idx = (pos[0] + np.arange(len(buf))) % len(audio)
        buf[:] = audio[idx]
        pos[0] = (pos[0] + len(buf)) % len(audio)

    return hook


def _voice_info(vid: int, voice: Any) -> dict:
    return {
        "id": vid,
        "name": getattr(voice, "name", ""),
        "provider": str(getattr(voice, "provider", "CPU")),
        "warnings": list(getattr(voice, "warnings", None) or []),
    }


SERVICE = "voicegui.engine.host:HostService"


def serve(conn: Any, board_name: str, service_path: str = SERVICE) -> None:
    """Entry point of the audio host process (``service_path``: module:class serving it)."""
    import importlib

    from voicegui.logs import setup_process_logging

    setup_process_logging("audio-host")
    # Ctrl-C in a terminal reaches the whole process group: the window or `voicegui live` decides
    # when this process ends (and it then removes what it made, e.g. the virtual microphone)
    with contextlib.suppress(ValueError, AttributeError):
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setswitchinterval(SWITCH_INTERVAL)
    t0 = time.perf_counter()
    board = MetricsBoard(board_name)
    module, _, name = service_path.partition(":")
    service = getattr(importlib.import_module(module), name)(conn, board)
    log.info("audio host %d ready in %.0f ms", os.getpid(), (time.perf_counter() - t0) * 1e3)
    try:
        service.run()
    finally:
        log.info("audio host %d exits", os.getpid())
        logging.shutdown()
        # worker threads of a neural library may still run: leave without waiting for them
        os._exit(0)
