"""The Windows installer (NSIS) and .zip of a built Windows bundle; runs on Linux or Windows.

`makensis` is NSIS's compiler (Debian/Ubuntu: apt install nsis; Windows: nsis.sourceforge.io or
`choco install nsis`). packaging/windows/installer.nsi is the script; this module writes the list
of the bundle's files for it, so that the uninstaller removes exactly what was installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path, PureWindowsPath

HERE = Path(__file__).resolve().parent
NSI = HERE / "windows" / "installer.nsi"


def makensis() -> str | None:
    found = shutil.which("makensis")
    if found is None and os.name == "nt":
        for base in (os.environ.get("PROGRAMFILES(X86)"), os.environ.get("PROGRAMFILES")):
            candidate = Path(base or "") / "NSIS" / "makensis.exe"
            if base and candidate.is_file():
                return str(candidate)
    return found


def _quote(text: str, prefix: str = "") -> str:
    """A string for an NSIS script: ``prefix`` (NSIS variables) + ``text`` with $ and " escaped."""
    return '"' + prefix + text.replace("$", "$$").replace('"', '$\\"') + '"'


def _in_instdir(rel: PureWindowsPath) -> str:
    return '"$INSTDIR"' if str(rel) == "." else _quote(str(rel), "$INSTDIR\\")


def files_script(bundle: Path) -> str:
    """NSIS macros InstallFiles (every file of ``bundle`` into $INSTDIR) and RemoveFiles (the
    same files, then their folders deepest first, each only if empty)."""
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    install, remove = [], []
    folders: set[PureWindowsPath] = set()
    current = None
    for f in files:
        rel = PureWindowsPath(*f.relative_to(bundle).parts)
        folder = rel.parent
        if folder != current:
            install.append(f"  SetOutPath {(_in_instdir(folder))}")
            current = folder
        install.append(f'  File "{f}"')  # a build machine's path: read as it is, no $ escapes
        remove.append(f"  Delete {(_in_instdir(rel))}")
        while str(folder) != ".":
            folders.add(folder)
            folder = folder.parent
    for folder in sorted(folders, key=lambda p: (-len(p.parts), str(p))):
        remove.append(f"  RMDir {(_in_instdir(folder))}")
    install.append('  SetOutPath "$INSTDIR"')
    return (
        "; written by packaging/windows_installer.py: the files of one bundle\n"
        "!macro InstallFiles\n" + "\n".join(install) + "\n!macroend\n"
        "!macro RemoveFiles\n" + "\n".join(remove) + "\n!macroend\n"
    )


def version4(version: str) -> str:
    nums = [int(n) for n in re.findall(r"\d+", version)[:4]]
    return ".".join(str(n) for n in nums + [0] * (4 - len(nums)))


def make_installer(
    bundle: Path, out: Path, version: str, flavour: str, icon: Path, work: Path
) -> Path:
    """Compile ``out`` (the setup .exe) from ``bundle``; raises RuntimeError with NSIS's output."""
    bundle, out, icon, work = (p.resolve() for p in (bundle, out, icon, work))  # NSIS: absolute
    tool = makensis()
    if tool is None:
        raise RuntimeError("makensis is not installed (Debian/Ubuntu: apt install nsis)")
    work.mkdir(parents=True, exist_ok=True)
    files = work / "files.nsh"
    files.write_text(files_script(bundle), encoding="utf-8-sig")  # NSIS reads UTF-8 with a BOM
    size_kb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) // 1024
    defines = {
        "VERSION": version,
        "VERSION4": version4(version),
        "FLAVOUR": flavour,
        "OUTFILE": str(out),
        "ICON": str(icon),
        "FILES": str(files),
        "SIZE_KB": str(size_kb),
    }
    flag = "/" if os.name == "nt" else "-"
    cmd = [tool, f"{flag}V2", *(f"{flag}D{k}={v}" for k, v in defines.items()), str(NSI)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or not out.is_file():
        output = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"makensis failed ({proc.returncode}):\n{output}")
    return out


def make_zip(bundle: Path, out: Path) -> Path:
    """``out``: the bundle's folder (by its own name) in a .zip, as Explorer unpacks it."""
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for p in sorted(bundle.rglob("*")):
            if p.is_file():
                z.write(p, Path(bundle.name) / p.relative_to(bundle))
    tmp.replace(out)
    return out
