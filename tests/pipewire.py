"""A real, headless PipeWire stack for tests: no desktop session, no sound card.

``pipewire_server`` starts D-Bus, PipeWire, WirePlumber and pipewire-pulse in a runtime folder of
their own (so a desktop's own sound server is never touched), points this process's environment
at it (a process spawned afterwards, like the audio host, inherits it), and stops it all after the
test. PipeWire's dummy driver clocks the graph. tests/conftest.py makes the fixture available
to every test; ``PipeWire.start()`` gives the same stack outside a fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

SERVER_PROGRAMS = ("dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse", "pactl")
PROGRAMS = (*SERVER_PROGRAMS, "pw-record")  # the server and what ``record`` uses
START_TIMEOUT = 10.0


def missing_programs(programs: tuple[str, ...] = PROGRAMS) -> list[str]:
    return [p for p in programs if shutil.which(p) is None]


@dataclass
class PipeWire:
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def start(cls) -> PipeWire:
        # a short path: the sockets' paths must fit in 108 bytes
        folder = Path(tempfile.mkdtemp(prefix="vg-pw-"))
        runtime = folder / "xdg"
        runtime.mkdir(mode=0o700)
        env = {
            "XDG_RUNTIME_DIR": str(runtime),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus",
            "JACK_NO_START_SERVER": "1",
        }
        pw = cls(folder, env)
        try:
            pw._spawn("dbus-daemon", "--session", f"--address={env['DBUS_SESSION_BUS_ADDRESS']}",
                      "--nofork", "--nopidfile")  # fmt: skip
            pw.wait_for(lambda: (runtime / "bus").exists(), "D-Bus")
            pw._spawn("pipewire")
            pw.wait_for(lambda: (runtime / "pipewire-0").exists(), "PipeWire")
            pw._spawn("wireplumber")
            pw._spawn("pipewire-pulse")
            # its socket first: a client polled earlier makes xdg/pulse itself, and
            # pipewire-pulse, creating it at the same moment, then gives up ("File exists")
            pw.wait_for(lambda: (runtime / "pulse" / "native").exists(), "pipewire-pulse")
            pw.wait_for(lambda: pw.pactl("info", check=False).returncode == 0, "pipewire-pulse")
        except BaseException:
            pw.stop()
            raise
        return pw

    def _full_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "PIPEWIRE_REMOTE")}
        env.update(self.env)
        return env

    def _spawn(self, *cmd: str) -> None:
        log = open(self.folder / f"{cmd[0]}.log", "wb")  # noqa: SIM115 (the process keeps it)
        self.procs.append(
            subprocess.Popen(cmd, env=self._full_env(), stdout=log, stderr=subprocess.STDOUT)
        )

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it holds; fail early when a program of the stack exited."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited: {self.log(p.args[0])[-800:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start in {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def log(self, program: str) -> str:
        path = self.folder / f"{program}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2.0)
        self.procs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- what another program sees -----------------------------------------------------------
    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(("pactl", *args), env=self._full_env(), capture_output=True,
                              text=True, timeout=10, check=check)  # fmt: skip

    def names(self, kind: str) -> list[str]:
        """Names of the server's sinks or sources (``pactl list short sources``)."""
        out = self.pactl("list", "short", kind).stdout
        return [line.split("\t")[1] for line in out.splitlines() if "\t" in line]

    def modules(self) -> list[str]:
        out = self.pactl("list", "short", "modules").stdout
        return [line.split("\t")[1] for line in out.splitlines() if "\t" in line]

    def record(self, target: str, seconds: float, rate: int = 48000) -> np.ndarray:
        """Record ``seconds`` of ``target`` (a source's node name) with pw-record, as another
        program would; mono float32."""
        import soundfile as sf

        path = self.folder / f"record-{time.monotonic_ns()}.wav"
        proc = subprocess.Popen(
            ["pw-record", "--target", target, "--rate", str(rate), "--channels", "1",
             "--format", "f32", str(path)],
            env=self._full_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(seconds)
        # pw-record finishes the file's header on SIGINT (and then exits with status 1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert path.exists(), err.decode(errors="replace")
        data, sr = sf.read(str(path), dtype="float32")
        assert sr == rate
        return data.reshape(-1)


@pytest.fixture
def pipewire_server(monkeypatch):
    """A fresh headless PipeWire + Pulse server for one test; this process's environment (and
    that of what it spawns) points at it."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"PipeWire test stack not installed (missing: {', '.join(missing)}); "
                    "scripts/setup.sh --test installs it")  # fmt: skip
    pw = PipeWire.start()
    for key, value in pw.env.items():
        monkeypatch.setenv(key, value)
    for key in ("PULSE_SERVER", "PIPEWIRE_REMOTE", "PIPEWIRE_NODE", "PULSE_SINK"):
        monkeypatch.delenv(key, raising=False)
    try:
        yield pw
    finally:
        pw.stop()
