"""A JACK server with the dummy driver, and port wiring, for loopback measurements and tests.

The dummy driver gives PortAudio a real JACK host API with a real clock and no sound card, and
``jack_connect`` can loop the app's own output into its input, which measures the round trip in
frames exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

DRIVER_LATE = "JackTimedDriver::Process XRun"  # jackd's message when its own timer woke late


class JackError(RuntimeError):
    pass


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which(args[0]) is None:
        raise JackError(f"{args[0]} not found: install JACK (Debian/Ubuntu: apt install jackd2)")
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=10)


def server_running() -> bool:
    try:
        return _run("jack_lsp", check=False).returncode == 0
    except (JackError, subprocess.TimeoutExpired):
        return False


@dataclass
class DummyServer:
    rate: int = 48000
    period: int = 256
    process: subprocess.Popen | None = None
    log: Any = None

    def start(self, timeout: float = 10.0) -> DummyServer:
        if shutil.which("jackd") is None:
            raise JackError("jackd not found: install JACK (Debian/Ubuntu: apt install jackd2)")
        # real-time scheduling keeps the dummy clock steady on a busy machine; where it is not
        # permitted, jackd exits at once and the server runs without it
        for mode in (["-R", "-P", "70"], ["--no-realtime"]):
            try:
                return self._start(mode, timeout)
            except JackError as exc:
                error = exc
        raise error

    def _start(self, mode: list[str], timeout: float) -> DummyServer:
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        cmd = ["jackd", *mode, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        # the server's messages go to a file: a pipe nobody drains would fill up and block it
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise JackError(f"jackd exited: {self.messages().strip()[-500:]}")
            if server_running():
                return self
            time.sleep(0.1)
        self.stop()
        raise JackError("jackd did not come up in time")

    def messages(self) -> str:
        """What the server printed so far."""
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def driver_late_wakeups(self) -> int:
        """Cycles the dummy driver itself started late (its clock is a sleeping thread); JACK
        flags an xrun for every client then, whatever the clients did."""
        return self.messages().count(DRIVER_LATE)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


def ports() -> list[str]:
    return [p.strip() for p in _run("jack_lsp").stdout.splitlines() if p.strip()]


def connections() -> dict[str, list[str]]:
    """port -> ports it is connected to (jack_lsp -c)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in _run("jack_lsp", "-c").stdout.splitlines():
        if not line.strip():
            continue
        if line.startswith((" ", "\t")):
            if current is not None:
                out[current].append(line.strip())
        else:
            current = line.strip()
            out[current] = []
    return out


def connect(src: str, dst: str) -> None:
    _run("jack_connect", src, dst)


def disconnect(src: str, dst: str) -> None:
    _run("jack_disconnect", src, dst, check=False)


def client_ports(exclude_prefix: str = "system:") -> tuple[list[str], list[str]]:
    """(capture ports, playback ports) of the non-system clients (the app's own streams)."""
    names = [p for p in ports() if not p.startswith(exclude_prefix)]
    ins = [p for p in names if p.split(":")[-1].startswith(("in", "input", "capture"))]
    outs = [p for p in names if p.split(":")[-1].startswith(("out", "output", "playback"))]
    return ins, outs


def loop_back(ins: list[str], outs: list[str]) -> None:
    """Detach the app's ports from the system ports; feed its first output into its first input."""
    conns = connections()
    for port in ins + outs:
        for other in conns.get(port, []):
            if port in outs:
                disconnect(port, other)
            else:
                disconnect(other, port)
    connect(outs[0], ins[0])
