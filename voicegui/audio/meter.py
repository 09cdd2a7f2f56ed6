"""A live input level meter on the chosen microphone, used while the voice changer is stopped.

rtmixer's C callback records the chosen channel into a ring (no Python on the device's thread);
a reader (the audio host, polled by the GUI) computes RMS and peak of what arrived since it last
looked.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from voicegui.audio.backend import close_stream, rtmixer, sounddevice
from voicegui.audio.devices import DeviceInfo, find_device
from voicegui.settings import DeviceRef

SILENCE_DB = -120.0


def _db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 1e-6 else SILENCE_DB


def levels(x: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of ``x`` in dBFS, floored at SILENCE_DB."""
    if len(x) == 0:
        return SILENCE_DB, SILENCE_DB
    ms = float(x.dot(x)) / len(x)
    return (10.0 * math.log10(ms) if ms > 1e-12 else SILENCE_DB), _db(float(np.max(np.abs(x))))


class InputMeter:
    """RMS and peak level (dBFS) of one input channel, updated on every callback."""

    def __init__(
        self,
        device: DeviceRef,
        sample_rate: int = 48000,
        channel: int = 0,
        latency: str | float = "high",
    ) -> None:
        self.device_ref = device
        self.sample_rate = int(sample_rate)
        self.channel = int(channel)
        self.latency = latency
        self.device: DeviceInfo | None = None
        self._rms_db = SILENCE_DB
        self._peak_db = SILENCE_DB
        self._reads = 0  # reads that found new audio: tells a live stream from a stuck one
        self.last_update = 0.0  # time.monotonic() when audio last arrived
        self._stream: Any = None
        self._ch = 0
        self._ring: Any = None
        self._action: Any = None
        self._buf = np.zeros(0, dtype=np.float32)

    # ---- reader ------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Take what the callback recorded since the last look and measure it."""
        ring = self._ring
        if ring is None:
            return
        n = ring.read_available
        if n == 0:
            return
        if n > len(self._buf):
            ring.advance_read_index(n - len(self._buf))  # only the newest audio counts
            n = len(self._buf)
        x = self._buf[:n]
        ring.readinto(x)
        self._rms_db, self._peak_db = levels(x)
        self._reads += 1
        self.last_update = time.monotonic()
        if self._action not in self._stream.actions:  # ring ran full: take it again
            ring.flush()
            self._action = self._stream.record_ringbuffer(ring, channels=[self._ch + 1])

    @property
    def callbacks(self) -> int:
        """How often new audio was found (grows while the stream delivers)."""
        self._drain()
        return self._reads

    @property
    def rms_db(self) -> float:
        self._drain()
        return self._rms_db

    @property
    def peak_db(self) -> float:
        self._drain()
        return self._peak_db

    # ---- lifecycle (any non-audio thread) ----------------------------------------------------
    def open(self) -> InputMeter:
        """Open and start the stream; raises LookupError / PortAudioError with a clear message."""
        if self._stream is not None:
            return self
        sd = sounddevice()
        dev = find_device(self.device_ref, "input")
        self.device = dev
        self._ch = min(self.channel, max(0, dev.max_input_channels - 1))
        rate = self.sample_rate
        try:
            sd.check_input_settings(
                device=dev.index, samplerate=rate, channels=self._ch + 1, dtype="float32"
            )
        except Exception:
            rate = int(dev.default_samplerate)  # the meter only needs some rate the device takes
        stream = rtmixer().Recorder(
            device=dev.index, channels=self._ch + 1, samplerate=rate, latency=self.latency
        )
        size = 1 << max(10, int(rate // 2 - 1).bit_length())  # about half a second
        self._ring = rtmixer().RingBuffer(4, size)
        self._buf = np.zeros(size, dtype=np.float32)
        self._action = stream.record_ringbuffer(self._ring, channels=[self._ch + 1])
        try:
            stream.start()
        except Exception:
            stream.close()
            raise
        self.last_update = time.monotonic()
        self._stream = stream
        return self

    def close(self) -> None:
        stream, self._stream = self._stream, None
        close_stream(stream)
        self._ring = None
        self._rms_db = self._peak_db = SILENCE_DB

    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    def stale(self, seconds: float = 1.0) -> bool:
        """True when no callback arrived for ``seconds`` (device gone or stream stuck)."""
        self._drain()
        return self.active and time.monotonic() - self.last_update > seconds

    def __enter__(self) -> InputMeter:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
