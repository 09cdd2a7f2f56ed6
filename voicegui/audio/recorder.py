"""Record a reference clip from a microphone and play it back. No Qt: the GUI polls ``progress``.

Both callbacks only copy between a preallocated buffer and PortAudio's arrays and advance a
counter (see the callback contract in io.py). Recordings are saved as WAV files under
``paths.data_dir()/references``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from voicegui.audio.backend import close_stream, rtmixer, sounddevice
from voicegui.audio.clips import (
    SILENT_PEAK,
    RecorderError,
    new_reference_path,
    references_dir,
    save_clip,
)
from voicegui.audio.devices import DeviceInfo, find_device
from voicegui.settings import DeviceRef

__all__ = ["Player", "Recorder", "RecorderError", "SILENT_PEAK", "new_reference_path",
           "references_dir", "save_clip"]  # fmt: skip


def _rate_for(kind: str, dev: DeviceInfo, wanted: int, channels: int) -> int:
    sd = sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=dev.index, samplerate=wanted, channels=channels, dtype="float32")
        return int(wanted)
    except Exception:
        return int(dev.default_samplerate)


class Recorder:
    """Fill a buffer of ``seconds`` from one input channel; stops taking audio when it is full."""

    def __init__(
        self, device: DeviceRef, seconds: float = 5.0, sample_rate: int = 48000, channel: int = 0
    ) -> None:
        if not 0.5 <= seconds <= 60.0:
            raise RecorderError("a reference recording must be between 0.5 and 60 seconds")
        self.device_ref = device
        self.seconds = float(seconds)
        self.wanted_rate = int(sample_rate)
        self.channel = int(channel)
        self.sample_rate = int(sample_rate)
        self._buf = np.zeros(0, dtype=np.float32)
        self._ch = 0
        self._peak_upto = 0
        self._peak = 0.0
        self._stream: Any = None
        self._action: Any = None
        self._stopped_at: int | None = None

    @property
    def _pos(self) -> int:
        """Frames the C callback has recorded so far."""
        if self._stopped_at is not None:
            return self._stopped_at
        return int(self._action.done_frames) if self._action is not None else 0

    @property
    def peak(self) -> float:
        """Running peak of what was recorded so far."""
        pos = self._pos
        if pos > self._peak_upto:
            chunk = self._buf[self._peak_upto : pos]
            self._peak = max(self._peak, float(np.max(np.abs(chunk))))
            self._peak_upto = pos
        return self._peak

    # ---- control (GUI / any other thread) ----------------------------------------------------
    def start(self) -> Recorder:
        sounddevice()
        try:
            dev = find_device(self.device_ref, "input")
        except LookupError as exc:
            raise RecorderError(str(exc)) from exc
        self._ch = min(self.channel, max(0, dev.max_input_channels - 1))
        self.sample_rate = _rate_for("input", dev, self.wanted_rate, self._ch + 1)
        self._buf = np.zeros(round(self.seconds * self.sample_rate), dtype=np.float32)
        self._peak_upto, self._peak, self._stopped_at = 0, 0.0, None
        try:
            stream = rtmixer().Recorder(
                device=dev.index, channels=self._ch + 1, samplerate=self.sample_rate
            )
            # the C callback fills the buffer and stops taking audio when it is full
            self._action = stream.record_buffer(self._buf, channels=[self._ch + 1])
            stream.start()
        except Exception as exc:
            raise RecorderError(f"cannot record from {dev.name}: {exc}") from exc
        self._stream = stream
        return self

    @property
    def frames(self) -> int:
        return self._pos

    @property
    def progress(self) -> float:
        return self._pos / len(self._buf) if len(self._buf) else 0.0

    @property
    def finished(self) -> bool:
        return len(self._buf) > 0 and self._pos >= len(self._buf)

    @property
    def recording(self) -> bool:
        return self._stream is not None and not self.finished

    def stop(self) -> np.ndarray:
        """Close the stream; returns what was recorded (may be shorter when stopped early)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._stopped_at = self._pos
        close_stream(stream)
        return self.audio

    @property
    def audio(self) -> np.ndarray:
        return self._buf[: self._pos].copy()

    @property
    def silent(self) -> bool:
        return self.peak < SILENT_PEAK

    def save(self, path: Path | None = None) -> Path:
        """Write the recording as a 16-bit WAV (readable everywhere); returns the path."""
        return save_clip(self.audio, self.sample_rate, path)


class Player:
    """Play a mono clip once on an output device (for listening to a recorded reference)."""

    def __init__(self, audio: np.ndarray, sample_rate: int, device: DeviceRef) -> None:
        self.audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self.sample_rate = int(sample_rate)
        self.device_ref = device
        self._stream: Any = None
        self._action: Any = None

    @property
    def _pos(self) -> int:
        return int(self._action.done_frames) if self._action is not None else 0

    def start(self) -> Player:
        sounddevice()
        try:
            dev = find_device(self.device_ref, "output")
        except LookupError as exc:
            raise RecorderError(str(exc)) from exc
        channels = min(2, dev.max_output_channels)
        rate = _rate_for("output", dev, self.sample_rate, channels)
        if rate != self.sample_rate:
            import soxr

            self.audio = soxr.resample(self.audio, self.sample_rate, rate).astype(np.float32)
            self.sample_rate = rate
        self._action = None
        try:
            stream = rtmixer().Mixer(device=dev.index, channels=channels, samplerate=rate)
            self._frames = np.ascontiguousarray(np.repeat(self.audio[:, None], channels, axis=1))
            self._action = stream.play_buffer(self._frames, channels=channels)
            stream.start()
        except Exception as exc:
            raise RecorderError(f"cannot play on {dev.name}: {exc}") from exc
        self._stream = stream
        return self

    @property
    def progress(self) -> float:
        return self._pos / len(self.audio) if len(self.audio) else 1.0

    @property
    def finished(self) -> bool:
        return self._pos >= len(self.audio)

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        close_stream(stream)
