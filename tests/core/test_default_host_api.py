"""With no host API chosen, the engine opens the same default the window shows: on Windows
WASAPI's default device, not PortAudio's default (MME). WASAPI does not exist here, so
PortAudio's device table is a stand-in with the layout sounddevice returns."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from voicegui.audio import devices


def _device(index: int, name: str, hostapi: int) -> dict:
    return dict(
        index=index, name=name, hostapi=hostapi, max_input_channels=2, max_output_channels=2,
        default_samplerate=48000.0, default_low_input_latency=0.01,
        default_low_output_latency=0.01, default_high_input_latency=0.1,
        default_high_output_latency=0.1,
    )  # fmt: skip


def _portaudio(with_wasapi: bool) -> SimpleNamespace:
    apis = [{"name": "MME", "default_input_device": 0, "default_output_device": 0}]
    table = [_device(0, "Microphone (MME)", 0)]
    if with_wasapi:
        apis.append({"name": "Windows WASAPI", "default_input_device": 1,
                     "default_output_device": 1})  # fmt: skip
        table.append(_device(1, "Microphone (WASAPI)", 1))
    return SimpleNamespace(
        query_hostapis=lambda: apis,
        query_devices=lambda: table,
        default=SimpleNamespace(device=[0, 0]),  # PortAudio's own default: MME's
    )


@pytest.mark.parametrize("kind", ["input", "output"])
def test_no_host_api_chosen_opens_wasapis_default(monkeypatch, kind):
    monkeypatch.setattr(devices, "sounddevice", lambda: _portaudio(True))
    assert devices.default_device(kind).hostapi == "Windows WASAPI"
    assert devices.default_device(kind, "MME").hostapi == "MME"  # a chosen one is kept
    # negative control: without WASAPI, PortAudio's own default
    monkeypatch.setattr(devices, "sounddevice", lambda: _portaudio(False))
    assert devices.default_device(kind).hostapi == "MME"
