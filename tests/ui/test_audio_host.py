"""The process boundary: the audio host dies and comes back, the window dies and the host follows,
the window's process never loads a neural library, and the app keeps time under load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.ui.conftest import pick_jack, start
from tests.waiting import wait_until
from voicegui.audio import jack
from voicegui.audio.io import MAX_REPORTED_LATENCY
from voicegui.audio.virtual_mic import SOURCE_NAME

pytestmark = pytest.mark.jack

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_audio_host_is_reported_and_restart_brings_the_audio_back(window, qtbot):
    pick_jack(window, qtbot)
    c = window.controller
    c.change(voice={"pitch": 4.0}, engine={"block_time": 0.02})
    start(window, qtbot)
    before = c.settings
    old_pid = c.host.pid
    c.host.kill()  # the audio process crashes mid-stream
    qtbot.waitUntil(lambda: not c.running, timeout=5000)
    texts = window.banners.texts()
    assert any("audio engine process stopped" in t and "killed" in t for t in texts), texts
    banner = next(b for b in window.banners.banners() if b.key == "engine")
    assert banner.action.isVisibleTo(banner) and banner.action.text() == "Restart"
    assert c.settings == before  # nothing the user set is lost
    banner.action.click()
    assert c.running, window.banners.texts()
    assert c.host.pid != old_pid
    qtbot.waitUntil(lambda: c.engine.snapshot().blocks > 5, timeout=5000)
    live = c.engine.live_settings()
    assert live.voice.pitch == 4.0 and live.engine.block_time == 0.02


GUI_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from voicegui.engine.client import AudioHost, RemoteEngine
    from voicegui.settings import DeviceRef, Settings, with_changes

    def main():
        ref = DeviceRef("JACK Audio Connection Kit", "system")
        s = with_changes(Settings(), audio={"input": ref, "output": ref},
                         engine={"block_time": 0.01})
        host = AudioHost().start()
        engine = RemoteEngine(host, s, host.create_voice(s.voice))
        engine.start()
        print(json.dumps({"host": host.pid, "mods": sorted(
            m for m in ("torch", "onnxruntime", "sounddevice", "rtmixer") if m in sys.modules)}),
            flush=True)
        time.sleep(600)

    if __name__ == "__main__":
        main()
    """
)


def test_when_the_window_dies_the_host_releases_the_device_and_exits(jack_server, tmp_path):
    script = tmp_path / "window.py"
    script.write_text(GUI_SCRIPT, encoding="utf-8")
    before = set(jack.ports())
    gui = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        info = json.loads(gui.stdout.readline())
        host = info["host"]
        assert info["mods"] == []  # the window's side opened streams without PortAudio itself
        ours = set(jack.ports()) - before
        assert ours, "the engine's JACK ports should be listed while it runs"
        gui.kill()  # the window is killed, not closed: nothing tells the host
        gui.wait(5)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and (_alive(host) or ours & set(jack.ports())):
            time.sleep(0.1)
        assert not _alive(host), "the audio host outlived its window"
        assert not ours & set(jack.ports()), "JACK still lists the dead app's ports"
    finally:
        gui.kill()


def test_the_window_process_never_loads_a_neural_library(window, qtbot, seedvc_folder, tmp_path):
    """Seed-VC runs (in the host); this process's own imports are checked in a fresh process,
    since the test runner itself has torch loaded by other tests."""
    from tests.ui.conftest import import_seedvc

    import_seedvc(window, qtbot, seedvc_folder)
    reference = tmp_path / "ref.wav"
    import numpy as np
    import soundfile as sf

    t = np.arange(48000 * 2) / 48000
    sf.write(str(reference), 0.3 * np.sin(2 * np.pi * 180 * t), 48000)
    script = tmp_path / "neural_window.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            from voicegui.engine.client import AudioHost, RemoteEngine
            from voicegui.engine.audiofile import read_audio, to_mono
            from voicegui.settings import DeviceRef, Settings, with_changes

            def main():
                ref = DeviceRef("JACK Audio Connection Kit", "system")
                s = with_changes(Settings(), audio={{"input": ref, "output": ref}},
                    engine={{"block_time": 0.25, "extra_left_time": 0.5, "crossfade_time": 0.02,
                             "extra_dit_left_time": 0.2, "extra_right_time": 0.0}},
                    voice={{"voice": "seedvc", "diffusion_steps": 2, "cfg_rate": 0.0,
                            "max_prompt_time": 1.0}})
                host = AudioHost().start()
                data, sr = read_audio({str(reference)!r})
                voice = host.build_voice(s.voice, (to_mono(data), sr), None, True)
                engine = RemoteEngine(host, s, voice)
                engine.start()
                import time
                t0 = time.monotonic()
                while engine.snapshot().blocks < 3 and time.monotonic() - t0 < 60:
                    time.sleep(0.1)
                snap = engine.snapshot()
                import os
                rt = []  # the host's threads at a real-time policy, and their priorities
                nice = []  # and every thread's nice value
                for tid in os.listdir(f"/proc/{{host.pid}}/task"):
                    try:
                        if os.sched_getscheduler(int(tid)) in (os.SCHED_FIFO, os.SCHED_RR):
                            rt.append(os.sched_getparam(int(tid)).sched_priority)
                        nice.append(os.getpriority(os.PRIO_PROCESS, int(tid)))
                    except OSError:
                        pass
                print(json.dumps({{"voice": snap.voice, "blocks": snap.blocks, "rt": rt,
                    "nice": nice, "own_nice": os.getpriority(os.PRIO_PROCESS, 0),
                    "priority": snap.priority,
                    "mods": sorted(m for m in ("torch", "onnxruntime", "transformers",
                                               "sounddevice") if m in sys.modules)}}))
                engine.stop()
                host.close()

            if __name__ == "__main__":
                main()
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=180,
        env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["voice"] == "seedvc" and info["blocks"] >= 3
    assert info["mods"] == [], info
    # the neural voice's block thread and its math library's threads run at ordinary priority:
    # real-time ones are JACK's client thread (above the block thread's 55) and the host's
    # command thread (50), where the OS grants them at all
    from voicegui.engine.priority import FIFO_PRIORITY, HELPER_PRIORITY

    assert info["priority"].startswith("real-time priority: no"), info
    assert all(p == HELPER_PRIORITY or p > FIFO_PRIORITY for p in info["rt"]), info
    assert info["rt"].count(HELPER_PRIORITY) <= 1, info
    # the voice was built on a thread with a nice boost (favour_ordinary_thread); the math
    # library's worker threads it started are ordinary, and nothing else kept a boost
    assert len(info["nice"]) > 3 and min(info["nice"]) >= info["own_nice"], info


def _bench_under_load(seconds: float) -> dict:
    """`voicegui bench --jack --gui --load 2` on the session's JACK server; its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "voicegui", "bench", "--jack", "--gui", "--load", "2",
         "--seconds", str(seconds), "--block-time", "0.01"],
        capture_output=True, text=True, cwd=ROOT, timeout=120 + 2 * seconds,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _summary(run: dict) -> dict:
    """What says why a load run failed: its counters, when the events came, the slowest blocks."""
    keys = ("priority", "driver_late_wakeups", "xruns_in", "xruns_out", "underruns",
            "dropped_blocks", "drift_corrections", "events", "gui")  # fmt: skip
    loop = run.get("loopback", {})
    return {
        **{k: run.get(k) for k in keys},
        "round_trip_frames": loop.get("round_trip_frames"),
        "compute": loop.get("compute"),
        "slowest_blocks": loop.get("slowest_blocks"),
    }


# Faults in one run below which it is measured once more. The design this test guards against
# (device callbacks in Python, waiting for the interpreter lock) faulted about 90 times per 20 s
# under this load (113 xruns and 21 underruns in 30 s); a thread of this virtual machine that is
# not run for a few periods makes one underrun and the xruns around it. Every run's faults are
# written to test-output/load-test-runs.json.
RETRY_BELOW = 10
# xruns jackd puts down to this client ("PortAudio was not finished") while its own timer kept
# time: the client's JACK thread (real-time, running a few microseconds of C, rtmixer's callback,
# no Python) was not run in time by this virtual machine. Seen here: up to 2 in a 20 s run, in
# about one run in five of a full test run, with the app's own path clean (no underrun, no drop,
# every click back at the computed latency); the design above made about 75.
CLIENT_XRUNS_TOLERATED = 2


def _faults(result: dict, driver_late: int) -> int:
    """Underruns, dropped blocks, and the xruns jackd does not put down to its own late timer."""
    return result["underruns"] + result["dropped_blocks"] + _client_xruns(result, driver_late)


def _client_xruns(result: dict, driver_late: int) -> int:
    return max(0, max(result["xruns_in"], result["xruns_out"]) - driver_late)


def _clean(result: dict, driver_late: int) -> bool:
    no_underruns = result["underruns"] == 0 and result["dropped_blocks"] == 0
    return no_underruns and _client_xruns(result, driver_late) <= CLIENT_XRUNS_TOLERATED


def test_twenty_seconds_with_the_window_plotting_and_two_busy_processes(jack_server, output_dir):
    """The product's own benchmark, as a user runs it: no underrun, no dropped block, and no
    xrun that the app's own code could have caused.

    The xruns are PortAudio's flags, which JACK raises for every client in a cycle that went
    wrong, also when the dummy driver itself (a sleeping thread, the only clock here) started the
    cycle late, which no client can prevent; jackd says so in its log ("JackTimedDriver::Process
    XRun"). So: no xrun beyond the driver's own late cycles, and (the app's own path) not one
    underrun or dropped block.

    This machine is a virtual one with two cores, and now and then one of its threads is not run
    for a few periods, the slowest block of such a run computing in under a millisecond: the
    client's JACK thread (an xrun, "client not finished" with no late driver; a few are
    tolerated, CLIENT_XRUNS_TOLERATED) or the block thread (an underrun). A run with a few faults
    beyond that is measured once more, and the second must be clean; a run with many fails at
    once (RETRY_BELOW).
    """
    server = jack_server["server"]

    runs = []

    def measure() -> tuple[dict, int]:
        late_before = server.driver_late_wakeups() if server is not None else 0
        result = _bench_under_load(20)
        late = server.driver_late_wakeups() - late_before if server is not None else 0
        runs.append({"driver_late_wakeups": late, **result})
        (output_dir / "load-test-runs.json").write_text(json.dumps(runs, indent=1))
        return result, late

    result, driver_late = measure()
    if not _clean(result, driver_late) and _faults(result, driver_late) < RETRY_BELOW:
        result, driver_late = measure()
    # every run's counters, event times and slowest blocks (pytest would shorten a dict)
    told = json.dumps([_summary(r) for r in runs], indent=1)
    assert result["voice"] == "dsp" and result["load_processes"] == 2, told
    assert result["gui"]["frames_drawn"] > 100, told  # the graph was drawing all along
    assert _client_xruns(result, driver_late) <= CLIENT_XRUNS_TOLERATED, (
        told + "\n" + (server.messages()[-3000:] if server is not None else "")
    )
    assert result["underruns"] == 0 and result["dropped_blocks"] == 0, told
    loop = result["loopback"]
    assert loop["clicks_returned"] == loop["clicks_sent"] > 0
    # the process boundary adds no buffer: measured round trip = computed, within one period
    assert abs(loop["difference_ms"]) <= 1e3 * result["period_frames"] / 48000, loop


@pytest.mark.slow
def test_bench_switches_voice_as_a_user_does_and_counts_what_the_old_voice_suffered(
    jack_server, rvc_home, rvc_assets
):
    """`bench --gui --switch-to rvc`: the window chooses RVC while the built-in voice plays; the
    built-in voice keeps playing while RVC loads in the audio host, then RVC takes over; the
    JSON says what the load cost the voice that was playing (figures for the closing notes, not
    asserted here: they depend on the machine)."""
    from tests.rvc.installed import kit_model
    from voicegui.bench_gui import SWITCH_POLL_S
    from voicegui.engine.host import PUBLISH_HZ

    done = subprocess.run(
        [sys.executable, "-m", "voicegui", "bench", "--jack", "--gui", "--switch-to", "rvc",
         "--model", str(kit_model(rvc_assets)), "--f0", "yin", "--precision", "fp32",
         "--block-time", "0.01", "--seconds", "120"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    switch = result["switch"]
    print("\nswitch to RVC while the built-in voice plays:", json.dumps(switch))
    assert switch["from"] == "dsp" and switch["to"] == "rvc", switch
    assert switch["loaded"] and switch["voice_now"] == "rvc", switch
    assert 0 < switch["load_s"] < 120 and switch["watched_s"] <= switch["load_s"], switch
    # the built-in voice played all along the load: one block per 10 ms, converted or (fallen
    # behind) dropped. Each of the two readings can be one poll and one publication old.
    during = switch["during_load"]
    stale_blocks = 2 * (SWITCH_POLL_S + 1.0 / PUBLISH_HZ) / 0.01 + 2
    expected = switch["watched_s"] / 0.01
    assert abs(during["blocks"] + during["dropped_blocks"] - expected) <= stale_blocks, switch
    assert set(during) >= {"underruns", "xruns_in", "xruns_out"}
    assert result["underruns"] == switch["during_load"]["underruns"]


def _has_torch(pid: int) -> bool:
    """Whether the process has torch's C++ library loaded (its memory map says)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")


def test_the_audio_host_imports_an_installed_neural_voices_libraries_before_the_engine_runs(
    jack_server, rvc_home
):
    """With RVC's weights installed, the host imports torch at start-up, and an engine started
    at once waits for that import (it would otherwise hold up the engine's block thread)."""
    from voicegui.engine.client import AudioHost, RemoteEngine
    from voicegui.settings import DeviceRef, Settings, with_changes

    ref = DeviceRef(jack_server["hostapi"], "system")
    s = with_changes(Settings(), audio={"input": ref, "output": ref}, engine={"block_time": 0.01})
    host = AudioHost().start()
    try:
        engine = RemoteEngine(host, s, host.create_voice(s.voice))
        engine.start()  # the built-in voice, at once
        state = host.call("debug_preload")
        assert state["voices"] == ["rvc"] and "torch" in state["modules"], state
        assert state["done"] and not state["failed"], state  # the start waited for it
        assert _has_torch(host.pid)
        engine.stop()
    finally:
        host.close()


def test_with_no_neural_voice_installed_the_audio_host_imports_none(jack_server, voicegui_home):
    from voicegui.engine.client import AudioHost

    host = AudioHost().start()
    try:
        assert host.call("debug_preload") is None  # it waits until the installed voices are read
        assert not _has_torch(host.pid)
    finally:
        host.close()


def test_live_runs_the_audio_host_without_a_window(jack_server):
    """`voicegui live`: status lines, a JSON summary, nothing left on JACK afterwards."""
    before = set(jack.ports())
    done = subprocess.run(
        [sys.executable, "-m", "voicegui", "live", "--input", f"{jack_server['hostapi']}:system",
         "--output", f"{jack_server['hostapi']}:system", "--seconds", "3", "--pitch", "5"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["voice"] == "dsp" and summary["blocks"] > 50
    assert summary["latency"]["end_to_end_ms"] > 0
    lines = [line for line in done.stderr.splitlines() if "latency" in line and "RTF" in line]
    assert len(lines) >= 2  # one status line a second
    assert "warning" not in done.stderr  # JACK's system capture is a microphone
    assert set(jack.ports()) <= before  # the streams are gone


def test_live_names_the_devices_when_one_is_unknown(jack_server):
    done = subprocess.run(
        [sys.executable, "-m", "voicegui", "live", "--input", "JACK Audio Connection Kit:nope",
         "--seconds", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "nope" in done.stderr and "system" in done.stderr  # what exists is listed


def test_live_warns_when_the_input_is_voicegui_s_own_virtual_microphone(jack_server):
    """A JACK client named like the virtual microphone (as pipewire-jack shows it) as the input:
    the run goes on, and says the voice would feed back into itself."""
    api = jack_server["hostapi"]
    metro = subprocess.Popen(["jack_metro", "-n", SOURCE_NAME, "-b", "120"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_until(lambda: any(p.startswith(f"{SOURCE_NAME}:") for p in jack.ports()))
        done = subprocess.run(
            [sys.executable, "-m", "voicegui", "live", "--input", f"{api}:{SOURCE_NAME}",
             "--output", f"{api}:system", "--seconds", "1"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    finally:
        metro.terminate()
        metro.wait(10)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "own virtual microphone" in done.stderr and "feed back" in done.stderr
    # jack_metro never sets its port's latency, so PortAudio reports JACK's "unknown" (2**32
    # frames): it is not counted as a device latency of hours
    device_in_ms = json.loads(done.stdout)["latency"]["device_in_ms"]
    assert 0.0 <= device_in_ms <= 1e3 * MAX_REPORTED_LATENCY
