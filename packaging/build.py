"""Build the voicegui app bundle with PyInstaller (one folder), in two flavours.

    .venv/bin/python packaging/build.py --flavour lite|full [--dist DIR] [--reuse] [--archive]
    .venv/bin/python packaging/build.py --os windows --flavour lite   # on Linux, through Wine

lite: the built-in voice only, no torch/onnxruntime (small). full: + torch and onnxruntime for the
neural voices. Installs PyInstaller into the running interpreter's environment if it is missing,
generates the icons (.ico/.icns, rendered from resources/icons/voicegui.svg with Qt) and the
Windows version file, runs packaging/voicegui.spec, checks the result, prints the bundle's size
and the build time, and writes a JSON report beside the bundle (<dist>/voicegui-<flavour>.json).

`--os windows` on Linux builds the Windows app with a pinned Windows Python under Wine
(packaging/windows_build.py) and packs its .zip and NSIS installer; on Windows, `--archive
--installer` does the same natively.

Exit codes: 0 built (or reused), 2 the build failed, 3 PyInstaller is not available.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bundle_config as cfg  # noqa: E402

ROOT = cfg.ROOT
SPEC = HERE / "voicegui.spec"
PYINSTALLER_REQ = "pyinstaller>=6.10,<7"
EXIT_FAILED = 2
EXIT_NO_PYINSTALLER = 3
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
# The lite bundle is ~201 MB on Linux: ~184 MB for the app with the built-in voice, plus ~17 MB
# of gRPC for the Remote GPU voice (the lite bundle's way to a neural voice). A new dependency
# that drags in a heavy package should fail the build rather than grow it unnoticed.
LITE_BUDGET_MB = 215


class PyInstallerUnavailable(RuntimeError):
    pass


def version() -> str:
    text = (ROOT / "voicegui" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    return match.group(1) if match else "0.0.0"


def ensure_pyinstaller() -> str:
    """PyInstaller's version; installs it with pip into this environment if it is missing."""
    if find_spec("PyInstaller") is None:
        print(f"PyInstaller not found: pip install '{PYINSTALLER_REQ}'", flush=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                PYINSTALLER_REQ,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise PyInstallerUnavailable(
                f"pip install {PYINSTALLER_REQ} failed:\n{(proc.stderr or proc.stdout)[-2000:]}"
            )
    out = subprocess.run(
        [sys.executable, "-c", "import PyInstaller; print(PyInstaller.__version__)"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise PyInstallerUnavailable(f"PyInstaller does not import: {out.stderr[-1000:]}")
    return out.stdout.strip()


# ---- icons -----------------------------------------------------------------------------------
def render_icon_pngs(out_dir: Path) -> dict[int, bytes]:
    """PNG bytes per size, rendered from the SVG with Qt (sharp at every size).

    Runs in a child process so that the build process never holds a QGuiApplication. Falls back
    to the shipped 256 px PNG where Qt cannot render (no QtSvg)."""
    svg = ROOT / "resources" / "icons" / "voicegui.svg"
    png = ROOT / "resources" / "icons" / "voicegui.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys\n"
        "from PySide6.QtCore import Qt\n"
        "from PySide6.QtGui import QGuiApplication, QImage, QPainter\n"
        "from PySide6.QtSvg import QSvgRenderer\n"
        "app = QGuiApplication([])\n"
        "r = QSvgRenderer(sys.argv[1])\n"
        "assert r.isValid()\n"
        "for s in map(int, sys.argv[3:]):\n"
        "    img = QImage(s, s, QImage.Format.Format_ARGB32)\n"
        "    img.fill(Qt.GlobalColor.transparent)\n"
        "    p = QPainter(img); r.render(p); p.end()\n"
        "    assert img.save(f'{sys.argv[2]}/icon_{s}.png')\n"
    )
    pngs: dict[int, bytes] = {}
    if svg.is_file():
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        proc = subprocess.run(
            [sys.executable, "-c", script, str(svg), str(out_dir), *map(str, ICON_SIZES)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode == 0:
            pngs = {s: (out_dir / f"icon_{s}.png").read_bytes() for s in ICON_SIZES}
        else:
            print(f"warning: could not render the SVG icon: {proc.stderr.strip()[-300:]}")
    if not pngs and png.is_file():
        pngs = {256: png.read_bytes()}
    return pngs


def write_ico(pngs: dict[int, bytes], path: Path) -> None:
    """A Windows .ico holding PNG images (Vista and later read PNG entries)."""
    sizes = [s for s in sorted(pngs) if s <= 256]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for s in sizes:
        data = pngs[s]
        dim = 0 if s >= 256 else s  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    path.write_bytes(header + entries + blobs)


# icns element types that hold PNG data, by pixel size (retina variants share sizes)
ICNS_TYPES = {
    16: b"icp4",
    32: b"icp5",
    64: b"icp6",
    128: b"ic07",
    256: b"ic08",
    512: b"ic09",
    1024: b"ic10",
}


def write_icns(pngs: dict[int, bytes], path: Path) -> None:
    """A macOS .icns with PNG elements (what iconutil writes, without needing macOS)."""
    body = b""
    for s, kind in ICNS_TYPES.items():
        if s in pngs:
            body += kind + struct.pack(">I", 8 + len(pngs[s])) + pngs[s]
    path.write_bytes(b"icns" + struct.pack(">I", 8 + len(body)) + body)


def write_version_file(ver: str, path: Path) -> None:
    """PyInstaller's VSVersionInfo text: what Explorer shows under Properties > Details."""
    nums = [int(n) for n in re.findall(r"\d+", ver)[:4]]
    nums += [0] * (4 - len(nums))
    tup = tuple(nums)
    strings = {
        "CompanyName": "voicegui",
        "FileDescription": "voicegui - real-time voice changer",
        "FileVersion": ver,
        "InternalName": "voicegui",
        "LegalCopyright": "MIT licence",
        "OriginalFilename": "voicegui.exe",
        "ProductName": "voicegui",
        "ProductVersion": ver,
    }
    items = ",\n".join(f"          StringStruct({k!r}, {v!r})" for k, v in strings.items())
    path.write_text(
        f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={tup}, prodvers={tup}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
{items}
    ])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
""",
        encoding="utf-8",
    )


def make_assets(flavour: str, assets: Path, meta: dict[str, Any]) -> None:
    assets.mkdir(parents=True, exist_ok=True)
    pngs = render_icon_pngs(assets / "png")
    if pngs:
        write_ico(pngs, assets / "voicegui.ico")
        write_icns(pngs, assets / "voicegui.icns")
    write_version_file(meta["version"], assets / "version_info.txt")
    (assets / "voicegui-bundle.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


# ---- the build -------------------------------------------------------------------------------
def host_os() -> str:
    return {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")


def bundle_dir(dist: Path, flavour: str) -> Path:
    if sys.platform == "win32":
        return dist / cfg.release_name(flavour, version(), "windows", "")
    return dist / f"voicegui-{flavour}"


def executable(bundle: Path, cli: bool = False) -> Path:
    if sys.platform == "win32":
        return bundle / ("voicegui-cli.exe" if cli else "voicegui.exe")
    return bundle / "voicegui"


def run_pyinstaller(flavour: str, dist: Path, work: Path, assets: Path, clean: bool) -> None:
    log = work / "pyinstaller.log"
    work.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        str(SPEC),
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work / "pyi"),
    ]
    if clean:
        cmd.append("--clean")
    cmd += ["--", "--flavour", flavour, "--assets", str(assets)]
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    text = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        print(text[-6000:], file=sys.stderr)
        raise RuntimeError(f"PyInstaller failed ({proc.returncode}); full log: {log}")
    warnings = [ln for ln in text.splitlines() if " WARNING: " in ln or " ERROR: " in ln]
    if warnings:
        print(f"PyInstaller warnings ({len(warnings)}, full log {log}):")
        for ln in warnings[:25]:
            print("  " + ln)


# Loaded only when a GPU execution provider is asked for; they come from the user's CUDA,
# cuDNN and TensorRT installation (see packaging/README.md), never from the bundle.
GPU_PROVIDER_LIBS = ("libonnxruntime_providers_cuda", "libonnxruntime_providers_tensorrt")


def linux_missing_libs(bundle: Path) -> list[str]:
    """Shared libraries in the bundle whose dependencies resolve neither in the bundle nor on
    this system (ldd with the bundle's own search path, as the bootloader sets it)."""
    if shutil.which("ldd") is None:
        return []
    internal = bundle / "_internal"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{internal}:{internal / 'portaudio'}")
    missing: list[str] = []
    for so in sorted(internal.rglob("*.so*")):
        if not so.is_file() or so.is_symlink():
            continue
        out = subprocess.run(["ldd", str(so)], capture_output=True, text=True, env=env).stdout
        for line in out.splitlines():
            if "not found" in line:
                missing.append(f"{so.relative_to(bundle)}: {line.strip()}")
    return missing


def strip_debug_info(bundle: Path) -> int:
    """Remove debug sections (Debian's libpython carries ~15 MB of them); returns bytes saved.

    Only --strip-debug, and never the auditwheel-repaired libraries in *.libs/ folders, whose
    patched ELF headers a full strip can break."""
    if shutil.which("strip") is None or shutil.which("readelf") is None:
        return 0
    saved = 0
    for so in sorted((bundle / "_internal").rglob("*.so*")):
        if not so.is_file() or so.is_symlink() or any(p.endswith(".libs") for p in so.parts):
            continue
        sections = subprocess.run(
            ["readelf", "-S", "-W", str(so)], capture_output=True, text=True
        ).stdout
        if ".debug_info" not in sections:
            continue
        before = so.stat().st_size
        if subprocess.run(["strip", "--strip-debug", str(so)]).returncode == 0:
            saved += before - so.stat().st_size
    return saved


def post_build(flavour: str, bundle: Path) -> list[str]:
    """Platform extras and checks; returns problems found (an empty list is a good bundle)."""
    problems: list[str] = []
    if not executable(bundle).is_file():
        problems.append(f"no executable at {executable(bundle)}")
    internal = bundle / "_internal"
    for rel in ("resources/icons/voicegui.png", "models/catalog.toml", "voicegui-bundle.json"):
        if not (internal / rel).is_file():
            problems.append(f"missing in bundle: {rel}")
    if sys.platform.startswith("linux"):
        saved = strip_debug_info(bundle)
        if saved:
            print(f"stripped {saved / 2**20:.1f} MB of debug info")
        for name in ("install.sh", "voicegui.desktop"):
            target = bundle / name
            shutil.copy2(HERE / "linux" / name, target)
        (bundle / "install.sh").chmod(0o755)
        missing = linux_missing_libs(bundle)
        gpu = [m for m in missing if any(g in m for g in GPU_PROVIDER_LIBS)]
        if gpu:
            print(f"{len(gpu)} CUDA/TensorRT libraries come from the user's system (expected):")
            for m in gpu:
                print("  " + m)
        problems += [f"unresolved library: {m}" for m in missing if m not in gpu]
        if not (internal / "portaudio" / "libportaudio.so.2").is_file():
            problems.append("libportaudio.so.2 was not collected (apt install libportaudio2)")
    if sys.platform == "win32":
        asio = list(internal.glob("_sounddevice_data/portaudio-binaries/*asio*.dll"))
        if not asio:
            problems.append("the ASIO PortAudio DLL is missing from the bundle")
        if not executable(bundle, cli=True).is_file():
            problems.append("voicegui-cli.exe is missing")
    leaked = cfg.NEURAL if flavour == "lite" else []
    for name in leaked:
        if (internal / name).is_dir():
            problems.append(f"lite bundle carries {name}/")
    return problems


def measure(path: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """Total bytes, file count and the biggest top-level entries of _internal (or the bundle)."""
    total, count = 0, 0
    per_entry: dict[str, int] = {}
    base = path / "_internal" if (path / "_internal").is_dir() else path
    for f in path.rglob("*"):
        if f.is_file() and not f.is_symlink():
            size = f.stat().st_size
            total += size
            count += 1
            try:
                key = f.relative_to(base).parts[0]
            except ValueError:
                key = f.relative_to(path).parts[0]
            per_entry[key] = per_entry.get(key, 0) + size
    top = sorted(per_entry.items(), key=lambda kv: -kv[1])[:15]
    return total, count, top


def archive(bundle: Path, flavour: str) -> Path:
    name = cfg.release_name(flavour, version(), host_os(), platform.machine())
    apps = sorted(bundle.parent.glob(f"voicegui{'' if flavour == 'full' else '-lite'}.app"))
    if sys.platform == "darwin" and apps and shutil.which("ditto"):
        # ditto keeps the .app's symlinks, permissions and signatures, as Finder's zip does
        out = bundle.parent / f"{name}.zip"
        subprocess.run(["ditto", "-c", "-k", "--keepParent", str(apps[0]), str(out)], check=True)
        return out
    if sys.platform == "win32":
        import windows_installer

        return windows_installer.make_zip(bundle, bundle.parent / f"{name}.zip")
    out = shutil.make_archive(str(bundle.parent / name), "gztar", bundle.parent, bundle.name)
    return Path(out)


report_path = cfg.report_path


def reusable(
    dist: Path, flavour: str, key: str, archive: bool = False, installer: bool = False
) -> dict[str, Any] | None:
    """The previous report when its bundle (and the archive and installer asked for) was
    built from exactly these inputs."""
    needed = ["bundle"] + ["archive"] * archive + ["installer"] * installer
    old = cfg.reusable(dist, flavour, key, needed)
    if old is None or not executable(bundle_dir(dist, flavour)).is_file():
        return None
    return old


def build(
    flavour: str,
    dist: Path,
    work: Path | None = None,
    reuse: bool = False,
    clean: bool = False,
    make_archive: bool = False,
    make_installer: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) one flavour; returns the report that is also written as JSON."""
    dist = dist.resolve()
    work = (work or ROOT / "build" / f"voicegui-{flavour}").resolve()
    key = cfg.input_hash(flavour)
    if reuse:
        old = reusable(dist, flavour, key, make_archive, make_installer)
        if old is not None:
            old["reused"] = True
            print(f"reusing {old['bundle']} (inputs unchanged, {old['size_mb']} MB)")
            return old
    if flavour == "full":
        missing = [m for m in ("torch", "onnxruntime") if find_spec(m) is None]
        if missing:
            raise RuntimeError(f"the full flavour needs {', '.join(missing)} installed")
    pyi_version = ensure_pyinstaller()
    meta = {
        "app": cfg.APP,
        "flavour": flavour,
        "version": version(),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine().lower()}",
        "pyinstaller": pyi_version,
        "input_hash": key,
        "modules": cfg.source_modules(),  # what --bundle-info --imports checks
    }
    t0 = time.perf_counter()
    make_assets(flavour, work / "assets", meta)
    bundle = bundle_dir(dist, flavour)
    run_pyinstaller(flavour, dist, work, work / "assets", clean)
    problems = post_build(flavour, bundle)
    seconds = time.perf_counter() - t0
    size, files, top = measure(bundle)
    if flavour == "lite" and size > LITE_BUDGET_MB * 2**20:
        problems.append(
            f"lite bundle is {size / 2**20:.0f} MB, over its {LITE_BUDGET_MB} MB budget: see "
            "'largest' in the report and exclude what the built-in voice does not need"
        )
    report: dict[str, Any] = {
        **meta,
        "ok": not problems,
        "problems": problems,
        "reused": False,
        "bundle": str(bundle),
        "executable": str(executable(bundle)),
        "size_bytes": size,
        "size_mb": round(size / 2**20, 1),
        "files": files,
        "build_seconds": round(seconds, 1),
        "largest": [{"entry": k, "mb": round(v / 2**20, 1)} for k, v in top],
    }
    if sys.platform == "darwin":
        apps = sorted(dist.glob("voicegui*.app"))
        if apps:
            report["app_bundle"] = str(apps[0])
    if make_archive:
        t1 = time.perf_counter()
        arc = archive(bundle, flavour)
        report["archive"] = str(arc)
        report["archive_mb"] = round(arc.stat().st_size / 2**20, 1)
        report["archive_seconds"] = round(time.perf_counter() - t1, 1)
    if make_installer:
        if sys.platform != "win32":
            raise RuntimeError("--installer makes the Windows installer: build with --os windows")
        import windows_installer

        t1 = time.perf_counter()
        setup = windows_installer.make_installer(
            bundle,
            bundle.parent / f"{bundle.name}-setup.exe",
            meta["version"],
            flavour,
            work / "assets" / "voicegui.ico",
            work / "nsis",
        )
        report["installer"] = str(setup)
        report["installer_mb"] = round(setup.stat().st_size / 2**20, 1)
        report["installer_seconds"] = round(time.perf_counter() - t1, 1)
    report_path(dist, flavour).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flavour", choices=cfg.FLAVOURS, default="lite")
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (dist/)")
    p.add_argument("--work", type=Path, help="work folder (build/voicegui-<flavour>/)")
    p.add_argument("--reuse", action="store_true", help="keep a bundle built from the same inputs")
    p.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    p.add_argument("--archive", action="store_true", help="also pack a .tar.gz (.zip on Windows)")
    p.add_argument(
        "--os",
        choices=("linux", "windows", "macos"),
        default=host_os(),
        help="the system to build for (default: this one); windows on Linux runs under Wine",
    )
    p.add_argument("--installer", action="store_true", help="Windows: also make the NSIS installer")
    p.add_argument(
        "--download-only",
        action="store_true",
        help="--os windows on Linux: fetch the pinned Windows Python and wheels, then stop",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="--os windows on Linux: fail instead of downloading what the cache lacks",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.os != host_os():
        if args.os == "windows" and host_os() == "linux":
            return main_windows_on_linux(args)
        print(f"cannot build for {args.os} on {host_os()}", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = build(
            args.flavour,
            args.dist,
            args.work,
            args.reuse,
            args.clean,
            args.archive or args.installer,
            args.installer,
        )
    except PyInstallerUnavailable as exc:
        print(f"cannot build: {exc}", file=sys.stderr)
        return EXIT_NO_PYINSTALLER
    except (RuntimeError, OSError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{Path(report['bundle']).name}: {report['size_mb']} MB in {report['files']} files, "
        f"built in {report['build_seconds']} s{' (reused)' if report['reused'] else ''} -> "
        f"{report['bundle']}"
    )
    for entry in report["largest"][:8]:
        print(f"  {entry['mb']:8.1f} MB  {entry['entry']}")
    if "archive" in report:
        print(f"archive: {report['archive']} ({report['archive_mb']} MB)")
    if "installer" in report:
        print(f"installer: {report['installer']} ({report['installer_mb']} MB)")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"report: {report_path(args.dist.resolve(), args.flavour)}")
    return 0 if report["ok"] else EXIT_FAILED


def main_windows_on_linux(args: argparse.Namespace) -> int:
    """The Windows app on Linux: Windows Python under Wine, then the .zip and installer."""
    import windows_build
    import windows_toolchain

    try:
        if args.download_only:
            missing = windows_toolchain.missing_downloads(args.flavour)
            if missing:
                windows_toolchain.download(args.flavour)
            folder = windows_toolchain.downloads_dir()
            print(f"Windows Python and wheels ({args.flavour}) in {folder}")
            return 0
        dist = args.dist.resolve() / "windows" if args.dist == ROOT / "dist" else args.dist
        report = windows_build.build(
            args.flavour, version(), dist, args.work, args.reuse, args.offline, args.clean
        )
    except windows_toolchain.NotDownloaded as exc:
        print(f"cannot build: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (RuntimeError, OSError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{Path(report['bundle']).name}: {report['size_mb']} MB in {report['files']} files"
        + (" (reused)" if report.get("reused") else f", built in {report['total_seconds']} s")
    )
    for key in ("archive", "installer"):
        if key in report:
            print(f"{key}: {report[key]} ({report[key + '_mb']} MB)")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 0 if report["ok"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
