"""Send to apps without a sound server: which virtual cable to offer on Windows and macOS (device
lists as PortAudio reports them there), how PortAudio reaches voicegui's own virtual microphone
on Linux, and how the switch is saved."""

from __future__ import annotations

import json
import os

import pytest

from voicegui.audio.cables import cable_for, find_cables, input_warning, missing_advice
from voicegui.audio.device_info import DeviceInfo
from voicegui.audio.virtual_mic import (
    DISPLAY_NAME,
    MISSING_ROUTE,
    SINK_DESCRIPTION,
    SINK_NAME,
    SOURCE_NAME,
    VirtualMicError,
    environment,
    route_for,
)
from voicegui.engine.metrics import LatencyBudget
from voicegui.settings import DeviceRef, Settings, with_changes


def dev(name: str, hostapi: str, outputs: int = 2, inputs: int = 0, index: int = 0) -> DeviceInfo:
    return DeviceInfo(index, name, hostapi, inputs, outputs, 48000.0, 0.01, 0.01, 0.1, 0.1)


WASAPI, MME, CORE = "Windows WASAPI", "MME", "Core Audio"
WINDOWS = [
    dev("Speakers (Realtek(R) Audio)", WASAPI),
    dev("Microphone (Realtek(R) Audio)", WASAPI, 0, 2),
    dev("CABLE Output (VB-Audio Virtual Cable)", WASAPI, 0, 2),  # a recording device: never
    dev("CABLE Input (VB-Audio Virtual Cable)", WASAPI),
    dev("CABLE Input (VB-Audio Virtual C", MME),  # MME cuts names at 31 characters
    dev("VoiceMeeter Aux Input (VB-Audio VoiceMeeter AUX VAIO)", WASAPI),
]


def test_vb_cable_on_windows_plays_into_cable_input_and_discord_picks_cable_output():
    cable = cable_for(WINDOWS, WASAPI)
    assert cable is not None and cable.product == "VB-CABLE"
    assert cable.output == DeviceRef(WASAPI, "CABLE Input (VB-Audio Virtual Cable)")
    assert cable.pick == "CABLE Output"
    assert '"CABLE Output"' in cable.advice
    # the same cable under MME, with its cut name
    mme = cable_for(WINDOWS, MME)
    assert mme is not None and mme.output.name == "CABLE Input (VB-Audio Virtual C"
    assert mme.pick == "CABLE Output"


def test_a_plain_cable_is_preferred_to_voicemeeter_which_needs_its_routing_explained():
    cables = find_cables(WINDOWS, WASAPI)
    assert [c.product for c in cables] == ["VB-CABLE", "VB-CABLE", "VoiceMeeter"]
    assert cables[0].output.hostapi == WASAPI  # the chosen host API's first
    only_vm = [d for d in WINDOWS if "CABLE" not in d.name]
    vm = cable_for(only_vm, WASAPI)
    assert vm is not None and vm.pick == "VoiceMeeter Aux Output"
    assert "B2" in vm.note and vm.note in vm.advice


@pytest.mark.parametrize(
    ("name", "pick"),
    [
        ("CABLE-A Input (VB-Audio Cable A)", "CABLE-A Output"),
        ("Hi-Fi Cable Input (VB-Audio Hi-Fi Cable)", "Hi-Fi Cable Output"),
        ("VoiceMeeter Input (VB-Audio VoiceMeeter VAIO)", "VoiceMeeter Output"),
        ("VoiceMeeter VAIO3 Input (VB-Audio VoiceMeeter VAIO3)", "VoiceMeeter VAIO3 Output"),
    ],
)
def test_each_windows_cable_names_its_recording_end(name, pick):
    cable = cable_for([dev(name, WASAPI)], WASAPI)
    assert cable is not None and cable.pick == pick


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("BlackHole 2ch", "BlackHole"),
        ("BlackHole 16ch", "BlackHole"),
        ("Loopback Audio", "Loopback"),
        ("VB-Cable", "VB-CABLE"),
    ],
)
def test_macos_virtual_devices_are_picked_by_the_same_name_in_the_other_app(name, product):
    devices = [dev("MacBook Pro Speakers", CORE), dev(name, CORE, 2, 2)]
    cable = cable_for(devices, CORE)
    assert cable is not None and cable.product == product
    assert cable.output == DeviceRef(CORE, name) and cable.pick == name


def test_ordinary_devices_are_not_cables():
    devices = [
        dev("Speakers (Realtek(R) Audio)", WASAPI),
        dev("Cable TV Input Speakers", WASAPI),  # a cable, but not a virtual one
        dev("CABLE Output (VB-Audio Virtual Cable)", WASAPI, 0, 2),  # recording end only
        dev("MacBook Pro Speakers", CORE),
        dev("Loopback Audio Capture", CORE, 0, 2),
    ]
    assert find_cables(devices) == []


def test_without_a_cable_the_advice_says_which_to_install_and_why():
    plain = [dev("Speakers (Realtek(R) Audio)", WASAPI)]
    assert cable_for(plain, WASAPI) is None
    win = missing_advice("win32", plain, WASAPI)
    assert "VB-CABLE" in win and "vb-audio.com" in win and "CABLE Output" in win
    assert "no built-in way" in win  # why
    mac = missing_advice("darwin", [dev("MacBook Pro Speakers", CORE)], CORE)
    assert "BlackHole" in mac and "Loopback" in mac and "no built-in way" in mac
    # installed, but the device lists show another host API
    other = missing_advice("win32", WINDOWS, "Windows DirectSound")
    assert "VB-CABLE" in other and WASAPI in other and "vb-audio.com" not in other


def test_a_cables_recording_end_as_the_input_is_named_and_a_loop_through_it_is_called_one():
    mic = DeviceRef(WASAPI, "Microphone (Realtek(R) Audio)")
    speakers = DeviceRef(WASAPI, "Speakers (Realtek(R) Audio)")
    cable_in = DeviceRef(WASAPI, "CABLE Input (VB-Audio Virtual Cable)")
    cable_out = DeviceRef(WASAPI, "CABLE Output (VB-Audio Virtual Cable)")
    # the voice plays into the cable, as output or as monitor, and the input records the cable
    for outputs in ((cable_in, DeviceRef()), (speakers, cable_in)):
        text = input_warning(WINDOWS, cable_out, outputs)
        assert "feed back" in text and f'"{cable_in.name}"' in text
    # the voice goes elsewhere: still not a microphone, and the text says what it hears
    text = input_warning(WINDOWS, cable_out, (speakers,))
    assert "recording end of a virtual cable (VB-CABLE)" in text and "feed back" not in text
    # MME's names, cut at 31 characters, on both ends
    mme = [*WINDOWS, dev("CABLE Output (VB-Audio Virtual ", MME, 0, 2)]
    cut_in, cut_out = DeviceRef(MME, "CABLE Input (VB-Audio Virtual C"), mme[-1].ref
    assert "feed back" in input_warning(mme, cut_out, (cut_in,))
    # macOS: one device both ways
    mac = [dev("BlackHole 2ch", CORE, 2, 2), dev("MacBook Pro Microphone", CORE, 0, 1)]
    blackhole = DeviceRef(CORE, "BlackHole 2ch")
    assert "feed back" in input_warning(mac, blackhole, (blackhole,))
    # negative controls: microphones, the default input, and names that only look alike
    assert input_warning(WINDOWS, mic, (cable_in,)) == ""
    assert input_warning(WINDOWS, DeviceRef(WASAPI), (cable_in,)) == ""
    assert input_warning(mac, DeviceRef(CORE, "MacBook Pro Microphone"), (blackhole,)) == ""
    for name in ("CABLE Outputs", "CABLE-A Output (VB-Audio Cable A)", "BlackHole 16ch"):
        assert input_warning([*WINDOWS, *mac], DeviceRef(WASAPI, name), (cable_in,)) == ""


def test_voicegui_s_own_virtual_microphone_as_the_input_is_a_loop():
    # as the sound server describes it, as its node (JACK through pipewire-jack), as a monitor
    for name in (DISPLAY_NAME, SOURCE_NAME, f"Monitor of {SINK_DESCRIPTION}"):
        text = input_warning([], DeviceRef("JACK Audio Connection Kit", name), ())
        assert "own virtual microphone" in text and "feed back" in text
    assert input_warning([], DeviceRef("ALSA", "pipewire"), ()) == ""


def test_portaudio_reaches_the_virtual_mic_through_pipewire_else_pulse_else_says_what_is_missing():
    alsa = [dev("default", "ALSA", 64, 64, 1), dev("pulse", "ALSA", 32, 32, 2),
            dev("pipewire", "ALSA", 64, 64, 3)]  # fmt: skip
    device, route = route_for(alsa)
    assert device.name == "pipewire" and dict(route.play_env) == {"PIPEWIRE_NODE": SINK_NAME}
    assert dict(route.record_env) == {"PIPEWIRE_NODE": SOURCE_NAME}
    device, route = route_for(alsa[:2])
    assert device.name == "pulse" and dict(route.play_env) == {"PULSE_SINK": SINK_NAME}
    assert dict(route.record_env) == {"PULSE_SOURCE": SOURCE_NAME}
    with pytest.raises(VirtualMicError) as info:
        route_for([alsa[0], dev("pipewire", "JACK Audio Connection Kit", 2, 2)])
    assert str(info.value) == MISSING_ROUTE and "pipewire-alsa" in MISSING_ROUTE


def test_the_route_variables_are_set_only_while_the_stream_opens(monkeypatch):
    monkeypatch.delenv("PIPEWIRE_NODE", raising=False)
    monkeypatch.setenv("PULSE_SINK", "theirs")
    with environment((("PIPEWIRE_NODE", SINK_NAME), ("PULSE_SINK", SINK_NAME))):
        assert os.environ["PIPEWIRE_NODE"] == SINK_NAME and os.environ["PULSE_SINK"] == SINK_NAME
    assert "PIPEWIRE_NODE" not in os.environ and os.environ["PULSE_SINK"] == "theirs"


def test_the_switch_is_saved_and_older_presets_load_with_it_off():
    on = with_changes(Settings(), audio={"virtual_mic": True})
    again = Settings.from_dict(json.loads(json.dumps(on.to_dict())))
    assert again.audio.virtual_mic is True and again == on
    old = on.to_dict()
    del old["audio"]["virtual_mic"]  # a preset saved before the switch existed
    assert Settings.from_dict(old).audio.virtual_mic is False


def test_the_virtual_mic_is_a_named_part_of_the_end_to_end_latency():
    base = LatencyBudget(block=0.01, lookahead=0.012, buffer=0.01, device_in=0.005,
                         device_out=0.005)  # fmt: skip
    sent = LatencyBudget(**{**base.__dict__, "virtual_mic": 0.0013})
    assert sent.end_to_end == pytest.approx(base.end_to_end + 0.0013)
    assert sent.algorithmic == base.algorithmic
    assert sent.as_dict()["virtual_mic_ms"] == pytest.approx(1.3)
