"""RealtimeEngine: the dedicated block thread, capture ring -> BlockProcessor -> output rings.

The device callbacks are C (see audio/io.py) and only move samples; all conversion happens here,
on one thread that asks for real-time priority and never waits for the GUI. When the voice is
slower than real time, whole input blocks are skipped (and counted) instead of queueing up, so the
latency stays where it was computed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from voicegui.audio.devices import choose_sample_rate, find_device, list_devices
from voicegui.audio.io import AudioIO, OutputSink, fill_floor
from voicegui.audio.virtual_mic import route_for, supported
from voicegui.engine.metrics import Metrics, MetricsSnapshot
from voicegui.engine.priority import Priority, normal_thread, request_realtime
from voicegui.engine.processor import BlockProcessor
from voicegui.engine.talk import OutputGate, TalkControl
from voicegui.settings import Settings, needs_restart
from voicegui.voices.base import Voice
from voicegui.voices.catalog import voice_identity
from voicegui.voices.registry import VOICES, create_voice

log = logging.getLogger(__name__)

STOP_FADE = 0.01  # s of fade-out pushed before the streams close
DRIFT_HEADROOM = 0.004  # s of extra buffer when input and output are different devices
JITTER_CALLBACKS = 1  # callbacks of headroom in the output ring beyond the minimum
POLL_MIN, POLL_MAX = 0.0002, 0.0005  # s the block thread sleeps while a block is incomplete


class EngineError(RuntimeError):
    """The engine could not start (device, sample rate, voice); the message says why."""


class RealtimeEngine:
    def __init__(
        self,
        settings: Settings,
        voice: Voice | None = None,
        reference: tuple[np.ndarray, int] | None = None,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings.validated()
        self.metrics = Metrics()
        self._voice = voice
        self._reference = reference
        # what the current voice was built for; None: handed in, taken to match the settings
        self._voice_key = None if voice is not None else _voice_identity(self.settings)
        self.on_event = on_event or (lambda kind, message: None)
        self.proc: BlockProcessor | None = None
        self.io: AudioIO | None = None
        self.sinks: list[OutputSink] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._primed = threading.Event()  # the output rings hold their start-up silence
        self.sample_rate = settings.audio.sample_rate
        self.rate_note: str | None = None
        self.dropped_blocks = 0
        self.stream_opens = 0  # how often the streams were opened (a restart opens them again)
        self.talk = TalkControl()  # push-to-talk and mute; the audio host shares its own
        self.block_hook: Callable[[np.ndarray], None] | None = None  # sees each input block
        self.output_hook: Callable[[np.ndarray], None] | None = None  # may add to each output
        # sees (input block, output block) after each block, e.g. to record them; must only copy
        self.tap: Callable[[np.ndarray, np.ndarray], None] | None = None
        # called on the block thread after each block (the audio host publishes metrics here,
        # so that no other thread of its process needs the GIL while the engine runs)
        self.after_block: Callable[[], None] | None = None
        # with "Send to apps" on: what the way to the virtual microphone adds after the output
        # device (measured by whoever made the device; shown as its own latency part)
        self.route_latency = 0.0

    # ---- public API (any thread) --------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> MetricsSnapshot:
        return self.metrics.snapshot

    @property
    def voice(self) -> Voice | None:
        return self._voice

    def start(self) -> None:
        if self.running:
            return
        s = self.settings
        try:
            input_dev = find_device(s.audio.input, "input")
            output_env: tuple[tuple[str, str], ...] = ()
            if s.audio.virtual_mic and supported():  # the voice goes to the virtual mic's sink
                output_dev, route = route_for(list_devices("output"))
                output_env = route.play_env
            else:
                output_dev = find_device(s.audio.output, "output")
            monitor_dev = find_device(s.audio.monitor, "output") if s.audio.monitor else None
            devs = [("input", input_dev), ("output", output_dev)]
            if monitor_dev is not None:
                devs.append(("output", monitor_dev))
            rate, note = choose_sample_rate(devs, s.audio.sample_rate, s.audio)
        except Exception as exc:
            raise EngineError(str(exc)) from exc
        self.sample_rate, self.rate_note = rate, note
        if note:
            self.on_event("warning", note)

        if self._voice is None:
            self._voice = create_voice(s.voice)
            self._voice_key = _voice_identity(s)
        events = getattr(self._voice, "set_event_sink", None)
        if callable(events):  # a remote voice reports losing and finding its server
            events(self.on_event)
        if self._reference is not None:
            self._voice.prepare(*self._reference)
        self.proc = BlockProcessor(self._voice, s, rate, self.metrics)
        self.proc.output_gate = OutputGate(self.talk, rate)
        block = self.proc.block_dev
        self.io = AudioIO(
            s.audio,
            rate,
            input_dev,
            output_dev,
            monitor_dev,
            capture_capacity=max(rate * 2, block * 8),
            sink_capacity=max(rate * 2, block * 4),
            blocksize=0,
            output_env=output_env,
        )
        self.sinks = self.io.sinks
        try:
            self.io.open()
            self.stream_opens += 1
        except Exception as exc:
            self.io = None
            raise EngineError(f"cannot open the audio streams: {exc}") from exc
        self._stop.clear()
        self._primed.clear()
        self.dropped_blocks = 0
        # start the thread before priming, so its start-up cost does not eat the primed silence
        self._thread = threading.Thread(target=self._run, name="voicegui-audio", daemon=True)
        self._thread.start()
        self._prime()
        self._primed.set()

    def stop(self, reason: str = "") -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.io is not None:
            time.sleep(STOP_FADE * 2)  # let the faded tail play out
            self.io.close()
            self.io = None
        self.metrics.publish(running=False, status=reason or "stopped")

    def update(self, settings: Settings) -> bool:
        """Apply new settings; returns True when the streams had to restart.

        Voice parameters, gains, gate, context and crossfade change between blocks. Devices,
        sample rate, block size and safety buffer restart the streams with a fade. Another
        voice, backend or compute device builds a new voice (seconds for a neural voice) and
        restarts; callers that want to build it elsewhere use ``set_voice`` first.
        """
        settings = settings.validated()
        old, self.settings = self.settings, settings
        wanted = _voice_identity(settings)
        if self._voice_key is None:
            self._voice_key = wanted  # a voice handed in by set_voice: it is what was asked for
        elif self._voice is not None and wanted != self._voice_key:
            self.set_voice(create_voice(settings.voice), self._reference)
            self._voice_key = wanted
            return self.running
        if self.proc is None or not self.running:
            return False
        if needs_restart(old, settings):
            self.stop("restarting")
            self.start()
            return True
        self.proc.request(settings)
        return False

    def set_voice(self, voice: Voice, reference: tuple[np.ndarray, int] | None = None) -> None:
        """Swap the voice (restarts the streams, with a fade).

        The next ``update`` takes the voice, backend and device it names as what this voice is.
        """
        was_running = self.running
        if was_running:
            self.stop("changing voice")
        if self._voice is not None and self._voice is not voice:
            self._voice.close()
        self._voice, self._reference = voice, reference
        self._voice_key = None
        if was_running:
            self.start()

    def close(self) -> None:
        self.stop()
        if self._voice is not None:
            self._voice.close()

    # ---- audio thread -------------------------------------------------------------------
    def _prime(self) -> None:
        """Fill the output rings with the headroom one block + one callback + margin needs."""
        assert self.io is not None and self.proc is not None
        rate, block = self.sample_rate, self.proc.block_dev
        frames = self.io.callback_frames()
        margin = round(self.settings.engine.buffer_margin_time * rate)
        if len(self.io.streams) > 1:
            # separate devices run on separate clocks: keep room to stretch before running dry
            margin += round(DRIFT_HEADROOM * rate)
        # one block and one callback is the least that works when every callback comes on time;
        # one more callback covers a device (or server) that runs two callbacks back to back
        # after a late wake-up, which nothing can refill in between (seen on a loaded machine)
        target = block + (1 + JITTER_CALLBACKS) * frames + margin
        window = max(1, round(0.5 * rate / block))
        tolerance = max(frames // 2, round(0.002 * rate))
        duplex = len(self.io.streams) - (self.io.monitor_dev is not None) == 1
        for i, sink in enumerate(self.sinks):
            shared = duplex and i == 0
            sink.prime(target, fill_floor(target, block, frames, shared), tolerance, window, shared)
        # the measure counts from here: input from before this moment is not part of any block
        self.io.capture.skip(self.io.capture.available())
        dev_in, dev_out = self.io.device_latency()
        self.proc.io_latency = ((target - block) / rate, dev_in, dev_out)
        self.proc.route_latency = self.route_latency if self.settings.audio.virtual_mic else 0.0

    def _run(self) -> None:
        proc, io = self.proc, self.io
        assert proc is not None and io is not None
        block = proc.block_dev
        rate = self.sample_rate
        buf = np.zeros(block, dtype=np.float32)
        fade = np.linspace(1.0, 0.0, max(1, round(STOP_FADE * rate)), dtype=np.float32)
        # a neural voice computes for most of each block on this thread: at real-time priority
        # it would starve the desktop, so only light voices ask for it
        info = VOICES.get(getattr(proc.voice, "name", ""))
        if info is not None and info.neural:
            normal_thread()  # whatever the thread that started this one had
            priority = Priority(False, "a neural voice computes on this thread")
        else:
            priority = request_realtime(block / rate, 0.25 * block / rate)
        log.info("block thread: %s", priority)
        self.metrics.publish(
            running=True,
            status="running",
            voice=getattr(proc.voice, "name", ""),
            provider=getattr(proc.voice, "provider", "CPU"),
            priority=str(priority),
        )
        reason = ""
        self._primed.wait(5.0)  # priming also drops the input captured while starting
        try:
            while not self._stop.is_set():
                have = io.capture.available()
                if have < block:
                    # the C callback fills the ring period by period; sleep about until the
                    # block is complete (never long: stopping and device loss are noticed here)
                    # asking PortAudio whether the streams still run costs a call: only as
                    # often as the counters are read (a stream that ended sets `failed` at once)
                    if io.failed or (io.poll_stats() and not io.active()):
                        reason = "the audio device stopped or disappeared"
                        break
                    time.sleep(min(POLL_MAX, max(POLL_MIN, (block - have) / rate)))
                    continue
                frames = max(1, io.max_frames)
                # more than a block and a callback waiting: the voice fell behind real time.
                # Skip to the newest audio instead of letting the backlog grow.
                excess = have - block - frames
                if excess >= block:
                    skipped = excess // block
                    io.capture.skip(skipped * block)
                    self.dropped_blocks += skipped
                    proc.restart_voice_stream()
                io.capture.check()
                late, fill = self._late_and_fill(block)
                io.capture.read_into(buf)
                if self.block_hook is not None:
                    self.block_hook(buf)
                out = proc.process(buf)
                if self.output_hook is not None:
                    self.output_hook(out)
                if self.tap is not None:
                    self.tap(buf, out)
                self.sinks[0].push(out, late, fill)
                for sink in self.sinks[1:]:
                    sink.push(out)
                self._publish_counters()
                if self.after_block is not None:
                    self.after_block()
            if not reason:
                # fade out whatever is queued next so stopping does not click
                tail = np.zeros(block, dtype=np.float32)
                n = min(len(fade), block)
                tail[:n] = proc.process(np.zeros(block, np.float32))[:n] * fade[:n]
                for sink in self.sinks:
                    sink.push(tail)
        except Exception as exc:  # a bug in the engine must surface, not kill audio silently
            log.exception("audio thread failed")
            reason = f"engine error: {type(exc).__name__}: {exc}"
        if reason:
            self.metrics.publish(running=False, status=reason)
            self.on_event("error", reason)

    def _late_and_fill(self, block: int) -> tuple[int, int]:
        """Input beyond the block, and the main output ring's fill, read at one instant.

        The C callback records, then plays: reading the output fill on both sides of the input
        count and retrying if it moved keeps a callback from landing between the two readings
        (which would make the fill measure one callback low and trigger a needless correction).
        """
        io, sink = self.io, self.sinks[0]
        assert io is not None
        for _ in range(8):
            before = sink.fill()
            have = io.capture.available()
            if sink.fill() == before:
                return have - block, before
        return have - block, sink.fill()

    def _publish_counters(self) -> None:
        io = self.io
        if io is None:
            return
        snap = self.metrics.snapshot
        c = io.counters
        counters = {
            "xruns_in": c.input_overflows + c.input_underflows + io.capture.overflows,
            "xruns_out": c.output_underflows + c.output_overflows + io.monitor_counters.xruns,
            "underruns": sum(s.underrun_events for s in self.sinks),
            "dropped_blocks": self.dropped_blocks,
            "drift_corrections": sum(s.corrections for s in self.sinks),
        }
        if all(getattr(snap, k) == v for k, v in counters.items()):
            return  # the common case: nothing to republish
        if counters["xruns_in"] + counters["xruns_out"] != snap.xruns_in + snap.xruns_out:
            self.metrics.mark_event(Metrics.EVENT_XRUN)
        if counters["dropped_blocks"] != snap.dropped_blocks:
            self.metrics.mark_event(Metrics.EVENT_DROP)
        if counters["underruns"] != snap.underruns:
            self.metrics.mark_event(Metrics.EVENT_UNDERRUN)
        self.metrics.snapshot = replace(snap, **counters)


def _voice_identity(settings: Settings) -> tuple[str, str, str, str]:
    """What a voice object is built for: changing any of these needs a new voice."""
    return voice_identity(settings.voice)
