"""A real ``voicegui serve`` (PyTriton + Triton, CPU) on localhost, serving the Seed-VC parity
kit's random-weight checkpoints with a tiny random XLS-R and, where the RVC kit is there, RVC
with the kit's random-weight shared weights and one of its voices in the server's library.

The server runs in its own environment (``.venv-serve``, made by ``scripts/setup.sh --test``:
PyTriton pins numpy < 2), from this source tree. Starting Triton takes seconds, so one server
serves every test of the run (the remote voice's tests and the window's); a test that kills it
starts it again on the same port. tests/conftest.py makes the fixtures available everywhere;
the test folders that use them provide ``kit_checkpoints`` (tests/seedvc/conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVE_PYTHON = Path(
    os.environ.get("VOICEGUI_SERVE_PYTHON", REPO / ".venv-serve" / "bin" / "python")
)
START_TIMEOUT = 180.0
BATCH_DELAY_MS = 50
# streams not heard from for this long are dropped: short, so that a test can outlast it (the
# app keeps its streams alive through silences)
IDLE_SECONDS = 8
THREADS = "1"  # both sides compute with one thread: same float32 operations in the same order
SERVER_LIBRARY_VOICE = "server voice"  # the RVC voice in the server's own library (the kit's v1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``voicegui serve`` as a child process in its own process group (Triton is its child).
    ``extra``: more command-line options (TLS, batching)."""

    def __init__(self, model_dir: Path, home: Path, port: int, extra: tuple[str, ...] = ()) -> None:
        self.model_dir, self.home, self.port, self.extra = model_dir, home, port, extra
        self.token_file = home / "token"
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = home / "serve.log"
        self.rvc = False  # whether it serves RVC

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
            "--idle-seconds", str(IDLE_SECONDS),
            *self.extra,
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


def need_serve_python() -> None:
    if not SERVE_PYTHON.exists():
        pytest.skip(f"no server environment at {SERVE_PYTHON}: run scripts/setup.sh --test")


@pytest.fixture(scope="session")
def served_model_dir(request, tmp_path_factory) -> Path:
    """The kit's checkpoints in the installed layout, with a tiny random XLS-R."""
    from tests.seedvc.conftest import write_published_layout

    kit = request.getfixturevalue("kit_checkpoints")
    return write_published_layout(kit, tmp_path_factory.mktemp("seedvc-model"))


def install_rvc_on_server(home: Path, request: pytest.FixtureRequest) -> bool:
    """The RVC kit's shared weights (the run's one install, linked) and its v1 voice (as
    SERVER_LIBRARY_VOICE, as `voicegui rvc import` adds it there) in the server's home; False
    when there is no RVC kit."""
    from tests.rvc.installed import kit_model
    from tests.rvc.kit import rvc_kit_dir

    if not (rvc_kit_dir() / "expected.npz").is_file():
        return False
    installed = request.getfixturevalue("rvc_installed_weights")
    assets = request.getfixturevalue("rvc_assets")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEGUI_HOME", str(home))
        from voicegui import paths
        from voicegui.voices.rvc import library

        (paths.models_dir() / "rvc").symlink_to(installed, target_is_directory=True)
        library.import_model(kit_model(assets, "v1"), name=SERVER_LIBRARY_VOICE)
    return True


@pytest.fixture(scope="session")
def voice_server(served_model_dir, tmp_path_factory, request):
    """One running server for the whole run (started again by tests that kill it), serving
    RVC too where the RVC kit is there (``voice_server.rvc``)."""
    need_serve_python()
    home = tmp_path_factory.mktemp("serve-home")
    rvc = install_rvc_on_server(home, request)
    extra = ("--voices", "seedvc,rvc") if rvc else ()
    srv = ServerProcess(served_model_dir, home, free_port(), extra=extra)
    srv.rvc = rvc
    srv.start()
    yield srv
    srv.stop()


# ---- TLS -----------------------------------------------------------------------------------------
def self_signed(folder: Path, name: str, san: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key (openssl), valid for the subject names ``san``."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/setup.sh installs it)")
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    """The server's certificate (for 127.0.0.1 only: reaching it as 'localhost' does not match
    it) and its key, and another server's certificate that does not verify it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder, "server", "IP:127.0.0.1")
    other, _ = self_signed(folder, "other", "IP:127.0.0.1")
    return {"cert": cert, "key": key, "other": other}


@pytest.fixture(scope="session")
def tls_voice_server(served_model_dir, tls_files, tmp_path_factory):
    """A second server, serving gRPC over TLS with ``tls_files``."""
    need_serve_python()
    tls = ("--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"]))
    home = tmp_path_factory.mktemp("serve-tls-home")
    srv = ServerProcess(served_model_dir, home, free_port(), extra=tls)
    srv.start()
    yield srv
    srv.stop()
