"""A real ``voicegui serve`` (PyTriton + Triton, CPU) on localhost for the session, serving the
Seed-VC parity kit's random-weight checkpoints with a tiny random XLS-R.

The server runs in its own environment (``.venv-serve``, made by ``scripts/setup.sh --test``:
PyTriton pins numpy < 2), from this source tree. Starting Triton takes seconds, so one server
serves every test; the test that kills it starts it again on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.seedvc.conftest import (  # noqa: F401 (fixtures)
    kit_checkpoints,
    kit_inputs,
    seedvc_kit,
    write_published_layout,
)

REPO = Path(__file__).resolve().parents[2]
SERVE_PYTHON = Path(
    os.environ.get("VOICEGUI_SERVE_PYTHON", REPO / ".venv-serve" / "bin" / "python")
)
START_TIMEOUT = 180.0
BATCH_DELAY_MS = 50
THREADS = "1"  # both sides compute with one thread: same float32 operations in the same order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``voicegui serve`` as a child process in its own process group (Triton is its child)."""

    def __init__(self, model_dir: Path, home: Path, port: int) -> None:
        self.model_dir, self.home, self.port = model_dir, home, port
        self.token_file = home / "token"
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = home / "serve.log"

    def start(self) -> None:
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            VOICEGUI_HOME=str(self.home),
            VOICEGUI_THREADS=THREADS,
        )
        env.pop("VIRTUAL_ENV", None)
        cmd = [
            str(SERVE_PYTHON), "-m", "voicegui", "serve",
            "--seedvc-dir", str(self.model_dir),
            "--compute-device", "cpu",
            "--precision", "fp32",
            "--port", str(self.port),
            "--token-file", str(self.token_file),
            # blocks sent together meet in a batch even when a loaded machine wakes the
            # second sender's thread late
            "--batch-delay-ms", str(BATCH_DELAY_MS),
        ]  # fmt: skip
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=out, env=env, start_new_session=True
        )
        ready = threading.Event()

        def read() -> None:  # the server's output goes to its log; "ready on" means it serves
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                if b"ready on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        t0 = time.monotonic()
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
                self.kill()
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"voicegui serve did not start:\n{tail}")

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def kill(self) -> None:
        """SIGKILL the whole group: the server dies without any goodbye, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


@pytest.fixture(scope="session")
def model_dir(kit_checkpoints, tmp_path_factory) -> Path:  # noqa: F811
    """The kit's checkpoints in the installed layout, with a tiny random XLS-R."""
    return write_published_layout(kit_checkpoints, tmp_path_factory.mktemp("seedvc-model"))


@pytest.fixture(scope="session")
def server(model_dir, tmp_path_factory):
    if not SERVE_PYTHON.exists():
        pytest.skip(f"no server environment at {SERVE_PYTHON}: run scripts/setup.sh --test")
    srv = ServerProcess(model_dir, tmp_path_factory.mktemp("serve-home"), _free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def local_model(model_dir):
    """The same checkpoints loaded here, the way the app loads them for a local voice."""
    import torch

    from voicegui.voices.seedvc.model import SeedVCModel

    torch.set_num_threads(int(THREADS))
    return SeedVCModel.load(
        model_dir / "DiT_uvit_tat_xlsr_ema.pth",
        model_dir / "hift.pt",
        model_dir / "campplus_cn_common.bin",
        model_dir,
        device="cpu",
        precision="fp32",
    )


def pytest_report_header(config):
    return f"remote voice server environment: {SERVE_PYTHON} ({sys.platform})"
