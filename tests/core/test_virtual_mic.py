"""Send to apps on Linux, on a real headless PipeWire server: the virtual microphone appears for
other programs, carries the converted voice, and never outlives the app (switched off, quit, or a
killed audio host cleared at the next start)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.waiting import wait_until
from voicegui.audio.virtual_mic import DISPLAY_NAME, SINK_NAME, SOURCE_NAME
from voicegui.engine.client import AudioHost, RemoteEngine
from voicegui.settings import DeviceRef, Settings, with_changes

ROOT = Path(__file__).resolve().parents[2]
RATE = 48000
ALSA_PIPEWIRE = DeviceRef("ALSA", "pipewire")  # pipewire-alsa's device, as PortAudio lists it
DSP_CENTS = 15  # the built-in voice's pitch accuracy (tests/core/test_dsp_voice.py)


def ours(pw) -> tuple[bool, bool]:
    """(sink there, source there) as another program lists them."""
    return SINK_NAME in pw.names("sinks"), SOURCE_NAME in pw.names("sources")


def description(pw, source: str) -> str:
    listing = pw.pactl("list", "sources").stdout
    block = listing[listing.index(f"Name: {source}\n") :]
    return block.split("Description: ", 1)[1].split("\n", 1)[0]


def engine_settings(virtual_mic: bool = True, **voice) -> Settings:
    audio = {"input": ALSA_PIPEWIRE, "output": ALSA_PIPEWIRE, "virtual_mic": virtual_mic}
    return with_changes(
        Settings(),
        audio=audio,
        engine={"block_time": 0.02, "gate_threshold_db": -90.0},
        voice=voice,
    )


@pytest.fixture
def host(pipewire_server):
    h = AudioHost().start()
    h.ensure()  # spawned after the fixture pointed the environment at the test server
    yield h
    h.close()


def test_switched_on_other_programs_see_the_microphone_and_off_removes_it(pipewire_server, host):
    pw = pipewire_server
    assert ours(pw) == (False, False)
    state = host.virtual_mic(True, Settings().audio)
    assert state["on"] and state["what"] == "created"
    assert DISPLAY_NAME in state["message"]
    assert ours(pw) == (True, True)
    assert description(pw, SOURCE_NAME) == DISPLAY_NAME  # what Discord/OBS list
    measured = state["measured"]
    assert measured["pulses_returned"] == measured["pulses_sent"] > 0
    assert measured["measured_ms"] > 0
    # switched on again: the same device, never a second one
    assert host.virtual_mic(True)["on"]
    assert pw.names("sources").count(SOURCE_NAME) == 1
    assert host.virtual_mic(False)["on"] is False
    assert ours(pw) == (False, False)
    assert not {"module-null-sink", "module-remap-source"} & set(pw.modules())


def test_the_latency_measurement_fails_when_the_pulses_do_not_arrive(pipewire_server, host):
    """Negative control for the measurement: a source with our name that another sink feeds
    returns none of the pulses played into our sink."""
    pw = pipewire_server
    host.virtual_mic(True)
    source_module = next(
        line.split("\t")[0]
        for line in pw.pactl("list", "short", "modules").stdout.splitlines()
        if "module-remap-source" in line and SOURCE_NAME in line
    )
    pw.pactl("unload-module", source_module)
    pw.pactl("load-module", "module-null-sink", "sink_name=elsewhere")
    pw.pactl("load-module", "module-remap-source", "master=elsewhere.monitor",
             f"source_name={SOURCE_NAME}")  # fmt: skip
    measured = host.virtual_mic_measure()["measured"]
    assert measured["pulses_sent"] > 0 and measured["pulses_returned"] == 0
    assert measured["measured_ms"] is None


@pytest.mark.slow
def test_another_program_records_the_voice_from_it_five_semitones_up(pipewire_server, host):
    semitones = 5.0
    s = engine_settings(pitch=semitones)
    engine = RemoteEngine(host, s, host.create_voice(s.voice))
    engine.start()
    try:
        assert engine.info["virtual_mic"]["on"]
        f0 = 220.0  # a whole number of periods in the looped 2 s: no seam where it repeats
        t = np.arange(2 * RATE) / RATE
        engine.test_signal((0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32))
        time.sleep(0.3)  # the voice's first blocks reach the microphone
        recorded = pipewire_server.record(SOURCE_NAME, 1.6, RATE)
        snap = engine.snapshot()
        measured = engine.refresh()["virtual_mic"]["measured"]
    finally:
        engine.stop()
    assert snap.running and snap.blocks > 0
    seg = recorded[-RATE:]  # the last second: the recorder and the voice have settled
    n = len(seg)
    assert n == RATE
    assert np.sqrt(np.mean(seg**2)) > 0.3 / np.sqrt(2) / 4  # the voice arrived (within 12 dB)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(n)))
    peak = np.argmax(spectrum) * RATE / n
    expected = f0 * 2 ** (semitones / 12)
    # the built-in voice's pitch accuracy (within 15 cents, as tests/core/test_dsp_voice.py
    # asserts on speech; its pitch tracker sets it) plus half an FFT bin (RATE / n = 1 Hz) for
    # where the peak's bin lies: 2.6 Hz at 294 Hz
    tol = expected * (2 ** (DSP_CENTS / 1200) - 1) + 0.5 * RATE / n
    assert abs(peak - expected) <= tol, (peak, expected, tol)
    for wrong in (semitones - 1, semitones + 1, 0.0):  # a semitone off lies far outside it
        assert abs(f0 * 2 ** (wrong / 12) - expected) > 2 * tol
    # its measured share is its own part of the latency budget, counted in the end-to-end
    lat = snap.latency
    part = max(0.0, measured["measured_ms"] - measured["player_reported_ms"]) / 1e3
    assert lat.virtual_mic == pytest.approx(part)
    assert lat.end_to_end == pytest.approx(
        lat.algorithmic + lat.buffer + lat.device_in + lat.device_out + part
    )


def test_quitting_the_app_removes_it(pipewire_server):
    h = AudioHost().start()
    h.ensure()
    h.virtual_mic(True)
    assert ours(pipewire_server) == (True, True)
    h.close()
    assert ours(pipewire_server) == (False, False)


def test_a_killed_audio_host_leaves_it_and_the_next_start_removes_it(pipewire_server):
    pw = pipewire_server
    h = AudioHost().start()
    h.ensure()
    h.virtual_mic(True)
    h.kill()
    assert wait_until(lambda: not h.alive)
    h.close()
    assert ours(pw) == (True, True)  # the server keeps what a killed program loaded
    # the next start, with the switch off: the first engine start clears it
    h2 = AudioHost().start()
    s = engine_settings(virtual_mic=False)
    engine = RemoteEngine(h2, s, h2.create_voice(s.voice))
    engine.start()
    try:
        assert ours(pw) == (False, False)
    finally:
        engine.stop()
        h2.close()


def test_after_a_kill_switching_on_again_reuses_the_device(pipewire_server):
    pw = pipewire_server
    h = AudioHost().start()
    h.ensure()
    h.virtual_mic(True)
    modules = pw.pactl("list", "short", "modules").stdout
    h.kill()
    assert wait_until(lambda: not h.alive)
    h.close()
    h2 = AudioHost().start()
    try:
        state = h2.virtual_mic(True)
        assert state["on"] and state["what"] == "reused"
        # the very same modules: a program recording from it stays on it
        assert pw.pactl("list", "short", "modules").stdout == modules
        assert pw.names("sources").count(SOURCE_NAME) == 1
    finally:
        h2.close()
    assert ours(pw) == (False, False)


@pytest.mark.slow
def test_live_makes_it_for_the_run_and_ctrl_c_removes_it(pipewire_server):
    pw = pipewire_server
    live = subprocess.Popen(
        [sys.executable, "-m", "voicegui", "live", "--input", "ALSA:pipewire", "--virtual-mic",
         "--block-time", "0.02"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ), start_new_session=True,
    )  # fmt: skip
    try:

        def playing_into_it() -> bool:
            sinks = pw.pactl("list", "short", "sinks").stdout.splitlines()
            index = next((s.split("\t")[0] for s in sinks if f"\t{SINK_NAME}\t" in s), None)
            inputs = pw.pactl("list", "short", "sink-inputs").stdout.splitlines()
            return index is not None and any(i.split("\t")[1] == index for i in inputs)

        assert wait_until(playing_into_it, 60.0), live.stderr.read() if live.poll() else ""
        os.killpg(live.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        out, err = live.communicate(timeout=30)
    finally:
        if live.poll() is None:
            os.killpg(live.pid, signal.SIGKILL)
            live.wait(5)
    assert live.returncode == 0, err[-2000:]
    assert DISPLAY_NAME in err
    summary = json.loads(out)
    assert summary["virtual_mic"]["measured"]["pulses_returned"] > 0
    assert summary["latency"]["virtual_mic_ms"] >= 0.0
    assert ours(pw) == (False, False)
