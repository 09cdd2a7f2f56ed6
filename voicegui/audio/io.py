"""Opens the PortAudio streams with C callbacks: no Python runs on the device's thread.

rtmixer's callback (C, on sounddevice's own PortAudio) records the chosen input channel into a
PortAudio ring and plays output rings; the engine thread (Python) reads and writes those rings.
A Python callback would need the GIL, and whoever holds it (the GUI drawing, a thread the OS
preempted for a busy game) makes the device late.

rtmixer's caveat: when a ring runs empty (output) or full (input) in a callback, that callback
plays or records what it can and then drops the action. The engine thread notices at its next
block, counts it (underrun / overflow), primes the ring again and re-arms the action.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicegui.audio.backend import close_stream, rtmixer
from voicegui.audio.devices import DeviceInfo, extra_settings
from voicegui.audio.virtual_mic import environment
from voicegui.settings import AudioSettings

UNDERRUN_RAMP = 64  # samples of fade-in when the output resumes after running dry
STATS_INTERVAL = 0.25  # s between reads of PortAudio's status-flag counters
# a reported device latency above this is not a buffer but an unset value: a JACK client that
# never set its ports' latency reports JACK's "unknown" (2**32 frames, about 24 hours at 48 kHz)
MAX_REPORTED_LATENCY = 10.0  # s


def _pow2(n: int) -> int:
    return 1 << max(1, int(n - 1).bit_length())


class CaptureRing:
    """Mono input recorded by the C callback; read by the engine thread."""

    def __init__(self, capacity: int) -> None:
        self.ring = rtmixer().RingBuffer(4, _pow2(capacity))
        self.overflows = 0  # the ring ran full and the callback dropped the recording
        self._stream: Any = None
        self._channel = 1
        self._action: Any = None

    def arm(self, stream: Any, channel: int) -> None:
        self._stream, self._channel = stream, channel
        self._action = stream.record_ringbuffer(self.ring, channels=[channel + 1])

    def check(self) -> None:
        """Re-arm the recording if the callback dropped it (ring full: the engine fell behind)."""
        if self._stream is not None and self._action not in self._stream.actions:
            self.overflows += 1
            self.ring.flush()
            self._action = self._stream.record_ringbuffer(self.ring, channels=[self._channel + 1])

    def available(self) -> int:
        return self.ring.read_available

    def read_into(self, out: np.ndarray) -> int:
        return self.ring.readinto(out)

    def skip(self, n: int) -> int:
        return self.ring.advance_read_index(max(0, min(n, self.ring.read_available)))


class OutputSink:
    """An output ring whose fill level (and so the latency) stays bounded.

    The engine pushes converted blocks; the C callback plays them. ``prime`` fills the ring with
    the silence that covers one block plus one callback plus a safety margin; in steady state the
    fill just before a push is then a known ``floor``. Independent clocks drift, and stalls (the
    device played silence, then the backlog arrives) leave extra audio queued; both would make
    latency creep. So every ``window`` pushes the producer compares the lowest fill with the floor
    and drops (or repeats) the difference inside the next blocks, crossfaded. Each correction is
    counted.

    The fill is read from the ring itself just before each push. When the ring shares the input's
    clock, ``late`` (input that arrived after the block: callbacks that ran between the block being
    ready and the engine noticing) is added back, so polling jitter is not mistaken for drift.
    """

    def __init__(self, capacity: int, channels: int = 1) -> None:
        self.channels = channels
        self.ring = rtmixer().RingBuffer(4 * channels, _pow2(capacity))
        self.target = self.floor = self.tolerance = 0
        self.window = 1
        self.count_late = False
        self.underrun_events = 0
        self.overflow_samples = 0
        self.corrections = 0
        self.pushed = 0  # samples written, priming silence included (consumed = pushed - fill)
        self._pushes = 0
        self._correction = 0  # samples still to drop (> 0) or insert (< 0)
        self._window_min = _NO_FILL
        self._stream: Any = None
        self._action: Any = None
        self._resume = False  # fade the next block in (the output ran dry before it)
        self._ramp = np.linspace(0.0, 1.0, UNDERRUN_RAMP, dtype=np.float32)

    # ---- the player (the C callback in a live stream) ----------------------------------------
    def attach(self, stream: Any) -> None:
        """Play this ring on ``stream`` (rtmixer's Mixer API), mono copied to each channel.

        Playback is armed by ``prime``: armed on an empty ring, the first callback would drop it.
        """
        self._stream = stream

    def _arm(self) -> None:
        if self._stream is not None:
            self._action = self._stream.play_ringbuffer(
                self.ring, channels=list(range(1, self.channels + 1))
            )

    def playing(self) -> bool:
        """False once the callback found the ring empty and dropped the playback."""
        return self._action is not None and self._action in self._stream.actions

    def fill(self) -> int:
        return self.ring.read_available

    # ---- engine thread -----------------------------------------------------------------------
    def prime(
        self, target: int, floor: int, tolerance: int, window: int, count_late: bool = False
    ) -> None:
        """Top the ring up to ``target`` samples of silence and start counting from here.

        ``count_late``: the ring shares its clock with the input (see ``fill_floor``).
        """
        self.target, self.floor = target, floor
        self.count_late = count_late
        self.tolerance, self.window = tolerance, max(1, window)
        self._top_up()
        self._pushes = self._correction = 0
        self._window_min = _NO_FILL
        if not self.playing():
            self._arm()

    def _top_up(self) -> None:
        missing = self.target - self.ring.read_available
        if missing > 0:
            self._write(np.zeros(missing, dtype=np.float32))

    def _write(self, mono: np.ndarray) -> None:
        data = mono if self.channels == 1 else np.repeat(mono[:, None], self.channels, axis=1)
        n = self.ring.write(data)
        self.pushed += n
        if n < len(mono):
            self.overflow_samples += len(mono) - n

    def push(self, block: np.ndarray, late: int = 0, fill: int | None = None) -> None:
        """Queue ``block``; ``late``/``fill``: the measure's parts when the caller read them
        together (see the class doc), else the fill is read now."""
        if self._stream is not None and not self.playing():
            # the callback ran dry and stopped playing: count it, restore the latency the ring
            # was primed for (silence), and play again with a short fade-in
            self.underrun_events += 1
            self.ring.flush()
            self._top_up_before(len(block))
            self._resume = True
            self._arm()
            self._window_min = _NO_FILL
            fill = None  # read before the re-prime: no longer what the ring holds
        self._pushes += 1
        now = self.ring.read_available if fill is None else fill
        low = now + (max(0, late) if self.count_late else 0)
        self._window_min = min(self._window_min, low)
        if self._pushes % self.window == 0 and self._window_min != _NO_FILL:
            low, self._window_min = self._window_min, _NO_FILL
            error = low - self.floor
            if abs(error) > self.tolerance and self._correction == 0:
                # > 0: audio piled up (latency crept up); < 0: draining (output clock faster)
                self._correction = error
                self.corrections += 1
        if self._correction:
            # spread the correction over consecutive blocks, at most half a block each
            n = max(-(len(block) // 2), min(len(block) // 2, self._correction))
            block = _shorten(block, n) if n > 0 else _lengthen(block, -n)
            self._correction -= n
        if self._resume:
            self._resume = False
            block = block.copy()
            r = min(UNDERRUN_RAMP, len(block))
            block[:r] *= self._ramp[:r]
        self._write(block)

    def _top_up_before(self, block: int) -> None:
        """After running dry: silence so that, with the next block, the fill is the target."""
        missing = self.target - block - self.ring.read_available
        if missing > 0:
            self._write(np.zeros(missing, dtype=np.float32))


_NO_FILL = 1 << 60


def fill_floor(target: int, block: int, frames: int, shared_clock: bool) -> int:
    """The steady-state value of the engine's fill measure (see ``OutputSink``) for a ring
    primed with ``target`` samples.

    Shared clock (one duplex callback records and plays the ring): every callback adds to the
    input what it takes from the output, so "fill before the push + input that arrived after the
    block" is exactly ``target - block``, however late the engine noticed the block.
    A ring played by another stream (separate output device, monitor): the measure is the fill
    just before the push, i.e. the lowest fill a callback saw; in steady state, with each block
    pushed in time, that is ``target - block - frames + gcd(block, frames)``.
    """
    if shared_clock:
        return target - block
    return max(0, target - block - frames + math.gcd(block, frames))


def _shorten(block: np.ndarray, n: int) -> np.ndarray:
    """Drop ``n`` samples from the middle of ``block`` with a crossfade across the cut."""
    if n <= 0:
        return block
    keep = len(block) - n
    mid = keep // 2
    fade = min(mid, 128)
    out = np.empty(keep, dtype=np.float32)
    out[:mid] = block[:mid]
    out[mid:] = block[mid + n :]
    if fade:
        w = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        out[mid - fade : mid] = (
            block[mid - fade : mid] * (1.0 - w) + block[mid + n - fade : mid + n] * w
        )
    return out


def _lengthen(block: np.ndarray, n: int) -> np.ndarray:
    """Insert ``n`` samples in the middle of ``block`` by replaying a stretch, crossfaded."""
    if n <= 0:
        return block
    mid = len(block) // 2
    n = min(n, mid)
    fade = min(n, 128)
    out = np.empty(len(block) + n, dtype=np.float32)
    out[:mid] = block[:mid]
    out[mid : mid + n] = block[mid - n : mid]  # replay the last n samples before the middle
    out[mid + n :] = block[mid:]
    # the jump back happens at ``mid``: fade from the natural continuation into the replay
    w = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out[mid : mid + fade] = block[mid : mid + fade] * (1.0 - w) + out[mid : mid + fade] * w
    return out


@dataclass
class StreamCounters:
    """PortAudio's status flags, summed over callbacks (read from the C callback's counters)."""

    input_overflows: int = 0
    input_underflows: int = 0
    output_underflows: int = 0
    output_overflows: int = 0
    max_frames: int = 0
    callbacks: int = 0

    @property
    def xruns(self) -> int:
        return (
            self.input_overflows
            + self.input_underflows
            + self.output_underflows
            + self.output_overflows
        )

    def add(self, stats: Any) -> None:
        self.input_overflows += stats.input_overflows
        self.input_underflows += stats.input_underflows
        self.output_underflows += stats.output_underflows
        self.output_overflows += stats.output_overflows
        self.callbacks += stats.blocks
        if stats.blocks:
            self.max_frames = max(self.max_frames, int(stats.max_blocksize))


@dataclass
class _StatsReader:
    """Collects a stream's counters without blocking: ask the callback, pick the answer up later."""

    stream: Any
    counters: StreamCounters  # added to (several streams may share one)
    pending: Any = None

    def poll(self) -> None:
        if self.pending is not None:
            if self.pending in self.stream.actions:
                return  # the callback has not answered yet
            self.counters.add(self.pending.stats)
            self.pending = None
        if self.stream.active:
            self.pending = self.stream.fetch_and_reset_stats()


class AudioIO:
    """Input (mono from one channel) into ``capture``; ``sinks`` out to output and monitor."""

    def __init__(
        self,
        audio: AudioSettings,
        rate: int,
        input_dev: DeviceInfo,
        output_dev: DeviceInfo,
        monitor_dev: DeviceInfo | None,
        capture_capacity: int,
        sink_capacity: int,
        blocksize: int = 0,
        output_env: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.audio, self.rate = audio, rate
        # variables that aim the main output at its target when it opens (the virtual
        # microphone's sink, see audio/virtual_mic.py); they would aim an input opened in the
        # same call too, so such an output is never half of a duplex stream
        self.output_env = output_env
        self.input_dev, self.output_dev, self.monitor_dev = input_dev, output_dev, monitor_dev
        self.blocksize = blocksize
        self.channel = min(audio.input_channel, max(0, input_dev.max_input_channels - 1))
        self.out_channels = min(2, output_dev.max_output_channels)
        self.capture = CaptureRing(capture_capacity)
        self.sinks = [OutputSink(sink_capacity, self.out_channels)]
        if monitor_dev is not None:
            self.sinks.append(OutputSink(sink_capacity, min(2, monitor_dev.max_output_channels)))
        self.streams: list[Any] = []
        # the input and main output streams' status flags, summed; the monitor's apart. Updated
        # a few times a second by poll_stats, read by the block thread at no cost.
        self.counters = StreamCounters()
        self.monitor_counters = StreamCounters()
        self._stats: list[_StatsReader] = []
        self._monitor_stats: _StatsReader | None = None
        self._stats_due = 0.0
        self.failed: str | None = None  # set when a stream finishes by itself

    @property
    def max_frames(self) -> int:
        return self.counters.max_frames

    def _finished(self) -> None:
        # PortAudio calls this once, when a stream ends; only a flag is set
        if self.failed is None:
            self.failed = "stream stopped"

    # ---- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        rt = rtmixer()
        a = self.audio
        in_ch = self.channel + 1
        common = dict(
            samplerate=self.rate,
            latency=_latency(a.latency),
            blocksize=self.blocksize,
            finished_callback=self._finished,
        )
        try:
            if self.input_dev.hostapi == self.output_dev.hostapi and not self.output_env:
                duplex = rt.MixerAndRecorder(
                    device=(self.input_dev.index, self.output_dev.index),
                    channels=(in_ch, self.out_channels),
                    extra_settings=(
                        extra_settings(self.input_dev, a),
                        extra_settings(self.output_dev, a),
                    ),
                    **common,
                )
                self.streams.append(duplex)
                recorder = player = duplex
            else:
                recorder = rt.Recorder(
                    device=self.input_dev.index,
                    channels=in_ch,
                    extra_settings=extra_settings(self.input_dev, a),
                    **common,
                )
                with environment(self.output_env):
                    player = rt.Mixer(
                        device=self.output_dev.index,
                        channels=self.out_channels,
                        extra_settings=extra_settings(self.output_dev, a),
                        **common,
                    )
                self.streams += [recorder, player]
            self._stats = [_StatsReader(s, self.counters) for s in self.streams]
            if self.monitor_dev is not None:
                monitor = rt.Mixer(
                    device=self.monitor_dev.index,
                    channels=self.sinks[1].channels,
                    extra_settings=extra_settings(self.monitor_dev, a),
                    **common,
                )
                self.streams.append(monitor)
                self._monitor_stats = _StatsReader(monitor, self.monitor_counters)
                self.sinks[1].attach(monitor)
            # actions are queued before the streams start, so the first callbacks already
            # record and play (the output rings are primed right after)
            self.capture.arm(recorder, self.channel)
            self.sinks[0].attach(player)
            for s in self.streams:
                s.start()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        for s in self.streams:
            close_stream(s)
        self.streams = []

    def active(self) -> bool:
        return bool(self.streams) and all(s.active for s in self.streams)

    def poll_stats(self, force: bool = False) -> bool:
        """Engine thread: fold the callbacks' status-flag counters in (a few times a second);
        True when it did."""
        now = time.monotonic()
        if not force and now < self._stats_due:
            return False
        self._stats_due = now + STATS_INTERVAL
        for reader in self._stats:
            reader.poll()
        if self._monitor_stats is not None:
            self._monitor_stats.poll()
        return True

    def device_latency(self) -> tuple[float, float]:
        """(input, output) latency in seconds as PortAudio reports it for the open streams."""
        if not self.streams:
            return 0.0, 0.0
        first = self.streams[0]
        if isinstance(first.latency, tuple):
            reported = float(first.latency[0]), float(first.latency[1])
        else:
            reported = float(first.latency), float(self.streams[1].latency)
        return _plausible(reported[0]), _plausible(reported[1])

    def callback_frames(self, wait: float = 0.5) -> int:
        """Largest callback size (for sizing the output headroom).

        With blocksize 0 the host decides (JACK uses its period), so watch the first callbacks.
        """
        if self.blocksize:
            return self.blocksize
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.poll_stats(force=True)
            time.sleep(0.01)
            if self.counters.callbacks >= 4:  # a few callbacks: some hosts start with a short one
                break
        self.poll_stats(force=True)
        time.sleep(0.005)
        self.poll_stats(force=True)
        if self.max_frames:
            return self.max_frames
        return max(64, round(self.device_latency()[1] * self.rate))


def _latency(value: str) -> str | float:
    if value in ("low", "high"):
        return value
    try:
        return float(value)
    except ValueError:
        return "low"


def _plausible(latency: float) -> float:
    """A device's reported latency, or 0 (not known) when the value cannot be a real buffer."""
    return latency if 0.0 <= latency <= MAX_REPORTED_LATENCY else 0.0
