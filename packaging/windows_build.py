"""`build.py --os windows` on Linux: the Windows app, built by the Windows Python under Wine.

1. The toolchain (packaging/windows_toolchain.py): the pinned Windows CPython and wheels in a Wine
   prefix of their own, cached by the pins' hash (downloads only here or with --download-only).
2. packaging/build.py itself runs under Wine with that Python: PyInstaller, the icon, the
   version resource, the bundle checks, exactly as on Windows.
3. Back on Linux: the .zip and the NSIS installer (makensis runs natively).

Output, in ``dist`` (default dist/windows/): voicegui-<version>-windows-x64-<flavour>/ (the app),
its .zip, voicegui-<version>-windows-x64-<flavour>-setup.exe, and voicegui-<flavour>.json (the
report: sizes, times, the input hash that lets an unchanged tree reuse the build).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import bundle_config as cfg
import windows_installer as installer
import windows_toolchain as wt

ROOT = cfg.ROOT
HERE = Path(__file__).resolve().parent


def build(
    flavour: str,
    version: str,
    dist: Path | None = None,
    work: Path | None = None,
    reuse: bool = False,
    offline: bool = False,
    clean: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) the Windows app of ``flavour``; the report is also written as JSON."""
    problem = wt.wine_missing()
    if problem:
        raise RuntimeError(f"cannot build for Windows here: {problem}")
    dist = (dist or ROOT / "dist" / "windows").resolve()
    work = (work or ROOT / "build" / f"voicegui-windows-{flavour}").resolve()
    key = cfg.windows_input_hash(flavour, wt.wine_version())
    if reuse:
        old = cfg.reusable(dist, flavour, key, ["bundle", "archive", "installer"])
        if old is not None:
            old["reused"] = True
            print(f"reusing {old['bundle']} (inputs unchanged)")
            return old
    if installer.makensis() is None:
        raise RuntimeError("makensis is not installed (Debian/Ubuntu: apt install nsis)")
    t0 = time.perf_counter()
    toolchain = wt.Toolchain(flavour).ensure(offline=offline)
    toolchain_s = time.perf_counter() - t0

    # the same build.py, run by the Windows Python: sys.platform is win32 there
    dist.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    args = [
        "wine",
        str(toolchain.python),
        wt.windows_path(HERE / "build.py"),
        "--flavour",
        flavour,
        "--dist",
        wt.windows_path(dist),
        "--work",
        wt.windows_path(work),
    ]
    if clean:
        args.append("--clean")
    t1 = time.perf_counter()
    rc = toolchain.wine.stream(args, work / "wine-build.log")
    toolchain.wine.wait()
    wine_s = time.perf_counter() - t1
    try:
        report = json.loads(cfg.report_path(dist, flavour).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"the build under Wine wrote no report (exit {rc}): {exc}") from exc
    if rc != 0 and report.get("ok"):
        report["problems"] = [*report.get("problems", []), f"build.py under Wine exited {rc}"]
        report["ok"] = False

    name = cfg.release_name(flavour, version, "windows", "")
    bundle = dist / name
    report["windows_paths"] = {k: report.get(k) for k in ("bundle", "executable")}
    report.update(
        bundle=str(bundle),
        executable=str(bundle / "voicegui.exe"),
        cli=str(bundle / "voicegui-cli.exe"),
        input_hash=key,
        bundle_input_hash=report.get("input_hash"),
        built_on=f"Linux, Wine ({wt.wine_version()})",
        toolchain_seconds=round(toolchain_s, 1),
        wine_build_seconds=round(wine_s, 1),
    )
    if report.get("ok") and bundle.is_dir():
        t2 = time.perf_counter()
        archive = installer.make_zip(bundle, dist / f"{name}.zip")
        t3 = time.perf_counter()
        setup = installer.make_installer(
            bundle,
            dist / f"{name}-setup.exe",
            version,
            flavour,
            work / "assets" / "voicegui.ico",
            work / "nsis",
        )
        t4 = time.perf_counter()
        report.update(
            archive=str(archive),
            archive_mb=round(archive.stat().st_size / 2**20, 1),
            archive_seconds=round(t3 - t2, 1),
            installer=str(setup),
            installer_mb=round(setup.stat().st_size / 2**20, 1),
            installer_seconds=round(t4 - t3, 1),
        )
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    cfg.report_path(dist, flavour).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
