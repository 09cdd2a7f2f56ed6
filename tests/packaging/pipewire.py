"""A headless PipeWire + PulseAudio server with a virtual microphone, private to one test run.

No desktop session and no sound card: D-Bus, PipeWire (its dummy driver clocks the graph),
WirePlumber and pipewire-pulse run in a runtime folder of their own, so another PipeWire on the
machine is neither needed nor disturbed. The virtual microphone is what a desktop has too: a null
sink ("VoiceGUI_Output") and a source remapped from its monitor ("VoiceGUI_Microphone"), so what is
played into the output can be recorded from the microphone. Wine's PulseAudio driver shows both
on WASAPI, MME and DirectSound.

Debian/Ubuntu packages: dbus pipewire pipewire-pulse wireplumber pipewire-bin pulseaudio-utils.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

TOOLS = ("dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse", "pactl")
OUTPUT = "VoiceGUI_Output"
MICROPHONE = "VoiceGUI_Microphone"


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class HeadlessPipeWire:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        runtime = self.folder / "xdg"
        self.env = {
            "XDG_RUNTIME_DIR": str(runtime),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime / 'bus'}",
            "PULSE_SERVER": f"unix:{runtime / 'pulse' / 'native'}",
            "JACK_NO_START_SERVER": "1",
        }
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        )
        log.close()  # the child keeps its own handle

    def _wait_for(self, ready, what: str, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up; logs in {self.folder}")
            time.sleep(0.05)

    def pactl(self, *args: str) -> str:
        out = subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self) -> HeadlessPipeWire:
        runtime = Path(self.env["XDG_RUNTIME_DIR"])
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        self._spawn(
            "dbus",
            ["dbus-daemon", "--session", f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}",
             "--nofork", "--nopidfile"],
        )  # fmt: skip
        self._wait_for((runtime / "bus").exists, "the D-Bus session bus")
        self._spawn("pipewire", ["pipewire"])
        self._wait_for((runtime / "pipewire-0").exists, "PipeWire")
        self._spawn("wireplumber", ["wireplumber"])
        self._spawn("pipewire-pulse", ["pipewire-pulse"])
        # its socket before any client: a client polled earlier makes the pulse folder itself,
        # and pipewire-pulse, creating it at the same moment, then gives up ("File exists")
        self._wait_for((runtime / "pulse" / "native").exists, "the pipewire-pulse socket")

        def pulse_up() -> bool:
            try:
                self.pactl("info")
                return True
            except RuntimeError:
                return False

        self._wait_for(pulse_up, "pipewire-pulse")
        self.pactl(
            "load-module", "module-null-sink", "sink_name=voicegui_out",
            f"sink_properties=device.description={OUTPUT}",
        )  # fmt: skip
        self.pactl(
            "load-module", "module-remap-source", "master=voicegui_out.monitor",
            "source_name=voicegui_mic", f"source_properties=device.description={MICROPHONE}",
        )  # fmt: skip
        self._wait_for(lambda: "voicegui_mic" in self.pactl("list", "short", "sources"), "the mic")
        self.pactl("set-default-sink", "voicegui_out")
        self.pactl("set-default-source", "voicegui_mic")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def __enter__(self) -> HeadlessPipeWire:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
