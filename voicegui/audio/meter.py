"""A live input level meter on the chosen microphone, used while the voice changer is stopped.

The PortAudio callback only computes RMS and peak of the chosen channel and stores them in two
float attributes (rebinding a float is atomic under the GIL); a reader (the GUI) polls them. The
callback follows the contract in io.py: no allocation beyond numpy scalars, no logging, no locks,
no exception escapes.
"""

from __future__ import annotations

import math
import time
from typing import Any

from voicegui.audio.backend import close_stream, sounddevice
from voicegui.audio.devices import DeviceInfo, find_device
from voicegui.settings import DeviceRef

SILENCE_DB = -120.0


def _db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 1e-6 else SILENCE_DB


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
        self.rms_db = SILENCE_DB
        self.peak_db = SILENCE_DB
        self.callbacks = (
            0  # how many callbacks ran: the GUI can tell a live stream from a stuck one
        )
        self.xruns = 0
        self.last_update = 0.0  # time.monotonic() of the newest callback
        self._stream: Any = None
        self._ch = 0

    # ---- PortAudio thread --------------------------------------------------------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            if status:
                self.xruns += 1
            x = indata[:, self._ch]
            if frames:
                ms = float(x.dot(x)) / frames
                peak = max(float(x.max()), -float(x.min()))
                self.rms_db = 10.0 * math.log10(ms) if ms > 1e-12 else SILENCE_DB
                self.peak_db = _db(peak)
            self.callbacks += 1
            self.last_update = time.monotonic()
        except Exception:  # never let an exception reach PortAudio
            pass

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
        stream = sd.InputStream(
            device=dev.index,
            channels=self._ch + 1,
            samplerate=rate,
            dtype="float32",
            latency=self.latency,
            callback=self._callback,
        )
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
        self.rms_db = self.peak_db = SILENCE_DB

    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    def stale(self, seconds: float = 1.0) -> bool:
        """True when no callback arrived for ``seconds`` (device gone or stream stuck)."""
        return self.active and time.monotonic() - self.last_update > seconds

    def __enter__(self) -> InputMeter:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
