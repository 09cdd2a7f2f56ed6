"""What a device is, as plain data: shared by the audio host and the window (no PortAudio)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voicegui.settings import DeviceRef

Kind = Literal["input", "output"]
# host APIs used first when the user has chosen none (the names PortAudio gives them)
PREFERRED_HOSTAPIS = ("Windows WASAPI",)
COMMON_RATES = (48000, 44100, 96000, 88200, 32000, 24000, 22050, 16000)


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_low_input_latency: float
    default_low_output_latency: float
    default_high_input_latency: float
    default_high_output_latency: float

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(hostapi=self.hostapi, name=self.name)

    def channels(self, kind: Kind) -> int:
        return self.max_input_channels if kind == "input" else self.max_output_channels
