"""Opens the PortAudio streams. Callbacks only move samples between rings and count problems.

Callback contract (PortAudio thread): no allocation beyond numpy views, no logging, no locks held,
no file access, no exception escapes, ``outdata`` is always filled completely (silence on underrun).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicegui.audio.backend import close_stream, sounddevice
from voicegui.audio.devices import DeviceInfo, extra_settings
from voicegui.audio.ringbuffer import RingBuffer
from voicegui.settings import AudioSettings

UNDERRUN_RAMP = 64  # samples of fade-out when the ring runs dry, so a gap does not click


class OutputSink:
    """An output ring whose fill level (and so the latency) stays bounded.

    The engine pushes converted blocks; the device callback pulls. ``prime`` fills the ring with
    the silence that covers one block plus one callback plus a safety margin; in steady state the
    lowest fill the callback sees is then a known ``floor``. Independent clocks drift, and stalls
    (the device played silence, then the backlog arrives) leave extra audio queued; both would
    make latency creep. So every ``window`` pushes the producer compares the lowest fill with the
    floor and drops (or repeats) the difference inside the next blocks, crossfaded. Each
    correction is counted.
    """

    def __init__(self, capacity: int) -> None:
        self.ring = RingBuffer(capacity)
        self.target = self.floor = self.tolerance = 0
        self.window = 1
        self.underrun_samples = 0
        self.underrun_events = 0
        self.corrections = 0
        self._pushes = 0
        self._correction = 0  # samples still to drop (> 0) or insert (< 0)
        self._min_fill = _NO_FILL  # lowest fill seen by the callback since the producer looked
        self._window_min = _NO_FILL
        self._ramp = np.linspace(1.0, 0.0, UNDERRUN_RAMP, dtype=np.float32)

    # PortAudio thread
    def pull(self, out: np.ndarray) -> None:
        n = len(out)
        got = self.ring.read_into(out)
        if got < n:
            r = min(got, UNDERRUN_RAMP)
            if r:
                out[got - r : got] *= self._ramp[UNDERRUN_RAMP - r :]
            out[got:] = 0.0
            self.underrun_samples += n - got
            self.underrun_events += 1
        fill = self.ring.available()
        if fill < self._min_fill:
            self._min_fill = fill

    # engine thread
    def prime(self, target: int, floor: int, tolerance: int, window: int) -> None:
        """Top the ring up to ``target`` samples of silence and start counting from here."""
        self.target, self.floor = target, floor
        self.tolerance, self.window = tolerance, max(1, window)
        missing = target - self.ring.available()
        if missing > 0:
            self.ring.write(np.zeros(missing, dtype=np.float32))
        self.underrun_samples = self.underrun_events = self._pushes = self._correction = 0
        self._min_fill = self._window_min = _NO_FILL

    def push(self, block: np.ndarray) -> None:
        self._pushes += 1
        low, self._min_fill = self._min_fill, _NO_FILL
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
        self.ring.write(block)


_NO_FILL = 1 << 60


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
    input_overflows: int = 0
    input_underflows: int = 0
    output_underflows: int = 0
    output_overflows: int = 0
    priming: int = 0

    @property
    def xruns(self) -> int:
        return (
            self.input_overflows
            + self.input_underflows
            + self.output_underflows
            + self.output_overflows
        )


class AudioIO:
    """Input (mono from one channel) into ``capture``; ``sinks`` out to output and monitor."""

    def __init__(
        self,
        audio: AudioSettings,
        rate: int,
        input_dev: DeviceInfo,
        output_dev: DeviceInfo,
        monitor_dev: DeviceInfo | None,
        capture: RingBuffer,
        sinks: list[OutputSink],
        wake: Any,
        blocksize: int = 0,
    ) -> None:
        self.audio, self.rate = audio, rate
        self.input_dev, self.output_dev, self.monitor_dev = input_dev, output_dev, monitor_dev
        self.capture, self.sinks, self.wake = capture, sinks, wake
        self.blocksize = blocksize
        self.counters = StreamCounters()
        self.monitor_counters = StreamCounters()
        self.streams: list[Any] = []
        self.channel = min(audio.input_channel, max(0, input_dev.max_input_channels - 1))
        self.failed: str | None = None  # set from the PortAudio thread when a stream aborts
        self.max_frames = 0  # largest callback seen: the real period when blocksize is 0

    # ---- callbacks (PortAudio thread) -------------------------------------------------------
    def _count(self, status, counters: StreamCounters) -> None:
        if status:
            if status.input_overflow:
                counters.input_overflows += 1
            if status.input_underflow:
                counters.input_underflows += 1
            if status.output_underflow:
                counters.output_underflows += 1
            if status.output_overflow:
                counters.output_overflows += 1
            if status.priming_output:
                counters.priming += 1

    def _duplex(self, indata, outdata, frames, time_info, status) -> None:
        try:
            if frames > self.max_frames:
                self.max_frames = frames
            self._count(status, self.counters)
            self.capture.write(indata[:, self.channel])
            self.wake.set()
            self.sinks[0].pull(outdata[:, 0])
            for ch in range(1, outdata.shape[1]):
                outdata[:, ch] = outdata[:, 0]
        except Exception:  # never let an exception reach PortAudio
            outdata.fill(0)

    def _input(self, indata, frames, time_info, status) -> None:
        try:
            self._count(status, self.counters)
            self.capture.write(indata[:, self.channel])
            self.wake.set()
        except Exception:
            pass

    def _output(self, outdata, frames, time_info, status) -> None:
        try:
            if frames > self.max_frames:
                self.max_frames = frames
            self._count(status, self.counters)
            self.sinks[0].pull(outdata[:, 0])
            for ch in range(1, outdata.shape[1]):
                outdata[:, ch] = outdata[:, 0]
        except Exception:
            outdata.fill(0)

    def _monitor(self, outdata, frames, time_info, status) -> None:
        try:
            self._count(status, self.monitor_counters)
            self.sinks[1].pull(outdata[:, 0])
            for ch in range(1, outdata.shape[1]):
                outdata[:, ch] = outdata[:, 0]
        except Exception:
            outdata.fill(0)

    def _finished(self) -> None:
        if self.failed is None:
            self.failed = "stream stopped"

    # ---- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        sd = sounddevice()
        a = self.audio
        in_ch = self.channel + 1
        out_ch = min(2, self.output_dev.max_output_channels)
        common = dict(
            samplerate=self.rate,
            dtype="float32",
            latency=_latency(a.latency),
            blocksize=self.blocksize,
        )
        try:
            if self.input_dev.hostapi == self.output_dev.hostapi:
                self.streams.append(
                    sd.Stream(
                        device=(self.input_dev.index, self.output_dev.index),
                        channels=(in_ch, out_ch),
                        callback=self._duplex,
                        finished_callback=self._finished,
                        extra_settings=(
                            extra_settings(self.input_dev, a),
                            extra_settings(self.output_dev, a),
                        ),
                        **common,
                    )
                )
            else:
                self.streams.append(
                    sd.InputStream(
                        device=self.input_dev.index,
                        channels=in_ch,
                        callback=self._input,
                        finished_callback=self._finished,
                        extra_settings=extra_settings(self.input_dev, a),
                        **common,
                    )
                )
                self.streams.append(
                    sd.OutputStream(
                        device=self.output_dev.index,
                        channels=out_ch,
                        callback=self._output,
                        finished_callback=self._finished,
                        extra_settings=extra_settings(self.output_dev, a),
                        **common,
                    )
                )
            if self.monitor_dev is not None:
                self.streams.append(
                    sd.OutputStream(
                        device=self.monitor_dev.index,
                        channels=min(2, self.monitor_dev.max_output_channels),
                        callback=self._monitor,
                        finished_callback=self._finished,
                        extra_settings=extra_settings(self.monitor_dev, a),
                        **common,
                    )
                )
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

    def device_latency(self) -> tuple[float, float]:
        """(input, output) latency in seconds as PortAudio reports it for the open streams."""
        if not self.streams:
            return 0.0, 0.0
        first = self.streams[0]
        if isinstance(first.latency, tuple):
            return float(first.latency[0]), float(first.latency[1])
        return float(first.latency), float(self.streams[1].latency)

    def callback_frames(self, wait: float = 0.5) -> int:
        """Largest output callback size (for sizing the output headroom).

        With blocksize 0 the host decides (JACK uses its period), so watch the first callbacks.
        """
        if self.blocksize:
            return self.blocksize
        deadline = time.monotonic() + wait
        while self.max_frames == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        if self.max_frames:
            time.sleep(0.02)  # a few more callbacks: some hosts start with a short one
            return self.max_frames
        return max(64, round(self.device_latency()[1] * self.rate))


def _latency(value: str) -> str | float:
    if value in ("low", "high"):
        return value
    try:
        return float(value)
    except ValueError:
        return "low"
