"""Build the lite Linux bundle (or reuse one built from the same inputs) and use it as a person
would, from the bundle only (no virtualenv on PATH, no PYTHONPATH, an empty VOICEGUI_HOME):

1. `voicegui --bundle-info`: frozen, resources/presets/catalog found through voicegui.paths, user
   folders under VOICEGUI_HOME, no torch/onnxruntime/scipy in lite, the JACK host API present.
2. The PortAudio fallback: with VOICEGUI_PORTAUDIO=bundled the copy inside the bundle loads and
   also lists JACK.
3. `voicegui devices --json` on a private JACK server (dummy driver): JACK and its ports listed.
4. `voicegui convert` of an espeak-ng sentence (non-ASCII file name) with the built-in voice.
5. The GUI offscreen for N seconds with the engine running on JACK (VOICEGUI_SMOKE_START=1):
   the window's cold-start time is read from its own report, the log must say the engine ran.
6. `install.sh --in-place` / `--uninstall` into a temporary HOME.
Every stdout/stderr and every log file is scanned for tracebacks, import errors and loader errors.

    .venv/bin/python packaging/smoke_test.py [--flavour lite] [--out DIR] [--gui-seconds 5]

Exit codes: 0 all checks passed, 1 a check failed, 2 the build failed, 3 PyInstaller could not be
installed (the pytest wrapper skips on that, and only on that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build as builder  # noqa: E402

ROOT = builder.ROOT
JACK = "JACK Audio Connection Kit"
EXIT_CHECK_FAILED = 1
BAD_OUTPUT = [
    "Traceback (most recent call last)",
    "ImportError",
    "ModuleNotFoundError",
    "Fatal Python error",
    "cannot open shared object file",
    "undefined symbol",
    "Could not load the Qt platform plugin",
    "Could not find the Qt platform plugin",
    "Segmentation fault",
    "PortAudio is not available",
]
LOG_ERROR = re.compile(r"^\S+ \S+ (ERROR|CRITICAL)\b", re.MULTILINE)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Run:
    cmd: list[str]
    rc: int
    seconds: float
    stdout: str
    stderr: str
    scan: bool = True  # False: the output is judged by its own check (bundle-info's JSON)


@dataclass
class Smoke:
    out: Path
    env: dict[str, str]
    checks: list[Check] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    extra_logs: list[Path] = field(default_factory=list)

    def run(self, cmd: list[str], timeout: float = 120, scan: bool = True, **env: str) -> Run:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                env={**self.env, **env},
                cwd=self.out,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
            )
            rc, so, se = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, so = -9, _text(exc.stdout)
            se = _text(exc.stderr) + f"\n[timed out after {timeout}s]"
        run = Run(cmd, rc, round(time.perf_counter() - t0, 2), so, se, scan)
        self.runs.append(run)
        log = self.out / "runs.log"
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(cmd)}  (rc={rc}, {run.seconds}s)\n{so}\n{se}\n")
        return run

    def check(self, name: str, ok: bool, detail: str = "", seconds: float = 0.0) -> bool:
        self.checks.append(Check(name, bool(ok), detail, seconds))
        print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def clean_env(home: Path, jack_name: str) -> dict[str, str]:
    """The environment of a user's desktop session: nothing from the venv or the checkout."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_LIBRARY_PATH")
        and not k.startswith(("VOICEGUI_", "PYTEST_"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and p != venv_bin
    )
    env.update(
        VOICEGUI_HOME=str(home),
        QT_QPA_PLATFORM="offscreen",
        JACK_DEFAULT_SERVER=jack_name,  # a private server: other JACK users are not disturbed
        JACK_NO_AUDIO_RESERVATION="1",
        LC_ALL=env.get("LC_ALL", "C.UTF-8"),
    )
    return env


@contextmanager
def jack_server(name: str, log: Path) -> Iterator[str | None]:
    """A named JACK server with the dummy driver; yields None (and an explanation) if impossible."""
    if shutil.which("jackd") is None:
        yield "jackd is not installed (Debian: apt install jackd2)"
        return
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(
            ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 15
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            lsp = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True)
            if lsp.returncode == 0 and "system:" in lsp.stdout:
                up = True
                break
            time.sleep(0.2)
        yield None if up else f"jackd did not come up: {log.read_text(errors='replace')[-500:]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def speech_wav(folder: Path) -> tuple[Path, str]:
    """espeak-ng speech under a non-ASCII name; a synthetic vowel if espeak-ng is missing."""
    path = folder / "smoke_fr_é_声.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                "en-us",
                "-w",
                str(path),
                "Hello, this is the bundled voice changer speaking. One, two, three.",
            ],
            check=True,
            capture_output=True,
        )
        return path, "espeak-ng"
    import numpy as np
    import soundfile as sf

    sr = 22050
    t = np.arange(int(2.5 * sr)) / sr
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700), 1))
    sf.write(str(path), (0.2 * x).astype(np.float32), sr)
    return path, "synthetic (espeak-ng missing)"


def scan(smoke: Smoke, home: Path) -> None:
    """Tracebacks, import and loader errors anywhere in the output or the logs fail the run."""
    texts = [
        (" ".join(r.cmd[1:3]) or r.cmd[0], r.stdout + r.stderr if r.scan else r.stderr)
        for r in smoke.runs
    ]
    logs = sorted((home / "logs").rglob("*")) if (home / "logs").is_dir() else []
    logs += smoke.extra_logs
    for f in logs:
        if f.is_file():
            texts.append((f.name, f.read_text(encoding="utf-8", errors="replace")))
    found = []
    for where, text in texts:
        found += [f"{where}: {p}" for p in BAD_OUTPUT if p in text]
        found += [f"{where}: {m.group(0)}" for m in LOG_ERROR.finditer(text)]
    smoke.check(
        "no tracebacks, import or loader errors in output and logs",
        not found,
        "; ".join(found[:8]) or f"{len(texts)} outputs/logs scanned ({len(logs)} log files)",
    )


def check_bundle_info(smoke: Smoke, exe: Path, home: Path, flavour: str) -> None:
    # --imports: import every voicegui module; full: also load and run the neural stack
    r = smoke.run([str(exe), "--bundle-info", "--imports"], timeout=180, scan=False)
    try:
        info = json.loads(r.stdout)
    except ValueError:
        smoke.check("bundle-info", False, f"rc={r.rc}: {(r.stdout + r.stderr)[-400:]}")
        return
    smoke.facts["bundle_info"] = info
    res = info["resources"]
    dirs = info["user_dirs"]
    problems = []
    if not info["frozen"]:
        problems.append("not frozen")
    if not (res["icon_svg"] and res["icon_png"] and res["catalog"] and res["presets"]):
        problems.append(f"resources not found: {res}")
    if not all(Path(d).is_relative_to(home) for d in dirs.values()):
        problems.append(f"user folders outside VOICEGUI_HOME: {dirs}")
    if not Path(info["bundle_root"]).is_relative_to(exe.parent):
        problems.append(f"bundle_root {info['bundle_root']} is not inside the bundle")
    if (info["env"].get("LD_LIBRARY_PATH") or "").startswith(str(exe.parent)):
        problems.append("LD_LIBRARY_PATH still points into the bundle (child processes)")
    mods = info.get("voicegui_modules", {})
    neural = tuple(f"No module named '{n}" for n in builder.cfg.NEURAL)
    broken = {
        k: v
        for k, v in mods.get("failures", {}).items()
        if not (flavour == "lite" and any(n in v for n in neural))  # lite: no neural stack
    }
    if broken or not mods.get("modules"):
        problems.append(f"voicegui modules that do not import: {broken or mods}")
    pkgs = info["packages"]
    if flavour == "lite":
        carried = [
            n for n in ("torch", "onnxruntime", "scipy", "transformers") if pkgs[n]["present"]
        ]
        if carried:
            problems.append(f"lite carries {carried}")
    else:
        missing = [
            n
            for n in ("torch", "onnxruntime", "transformers", "silero_vad")
            if not pkgs[n]["present"] or "error" in pkgs[n]
        ]
        if missing:
            problems.append(f"full lacks {missing}: {pkgs}")
        bad = {k: v for k, v in info.get("neural_probes", {}).items() if not v.startswith("ok")}
        if bad or not info.get("neural_probes"):
            problems.append(f"neural probes failed: {bad or 'not run'}")
    pa = info.get("portaudio", {})
    if JACK not in pa.get("hostapis", []):
        problems.append(f"no JACK host API: {pa}")
    smoke.check(
        "bundle-info: frozen, resources, catalog, user dirs, packages, PortAudio",
        not problems,
        "; ".join(problems) or f"PortAudio {pa.get('loaded')}, host APIs {pa.get('hostapis')}",
        r.seconds,
    )


def check_bundled_portaudio(smoke: Smoke, exe: Path) -> None:
    r = smoke.run([str(exe), "--bundle-info"], timeout=60, VOICEGUI_PORTAUDIO="bundled")
    try:
        pa = json.loads(r.stdout)["portaudio"]
    except (ValueError, KeyError):
        smoke.check("bundled PortAudio fallback", False, (r.stdout + r.stderr)[-400:])
        return
    loaded = pa.get("loaded") or []
    ok = any(str(exe.parent) in p for p in loaded) and JACK in pa.get("hostapis", [])
    smoke.check(
        "bundled PortAudio fallback (VOICEGUI_PORTAUDIO=bundled) lists JACK",
        ok,
        f"loaded {loaded}, host APIs {pa.get('hostapis')}",
        r.seconds,
    )


def check_devices(smoke: Smoke, exe: Path) -> None:
    r = smoke.run([str(exe), "devices", "--json"], timeout=60)
    try:
        devices = json.loads(r.stdout)
    except ValueError:
        smoke.check("devices --json", False, f"rc={r.rc}: {(r.stdout + r.stderr)[-400:]}")
        return
    jack = [d for d in devices if d.get("hostapi") == JACK]
    smoke.check(
        "devices: the JACK host API and its ports are listed",
        r.rc == 0 and bool(jack),
        f"{len(devices)} devices, JACK: {[d['name'] for d in jack]}",
        r.seconds,
    )


def check_convert(smoke: Smoke, exe: Path) -> None:
    import numpy as np
    import soundfile as sf

    src, how = speech_wav(smoke.out)
    dst = smoke.out / "converted_é.wav"
    r = smoke.run(
        [
            str(exe),
            "convert",
            str(src),
            str(dst),
            "--voice",
            "dsp",
            "--pitch",
            "4",
            "--formant",
            "1",
        ],
        timeout=120,
    )
    detail = f"rc={r.rc}, input {how}"
    ok = r.rc == 0 and dst.is_file()
    if ok:
        x, sr_in = sf.read(str(src), dtype="float32", always_2d=True)
        y, sr_out = sf.read(str(dst), dtype="float32", always_2d=True)
        rms = float(np.sqrt(np.mean(y**2)))
        ok = y.shape == x.shape and sr_out == sr_in and rms > 1e-3 and np.isfinite(y).all()
        detail += f", {y.shape[0] / sr_out:.2f} s at {sr_out} Hz, RMS {rms:.3f}"
    else:
        detail += ": " + (r.stdout + r.stderr)[-400:]
    smoke.check("convert: speech through the built-in voice", ok, detail, r.seconds)


def check_gui(smoke: Smoke, exe: Path, home: Path, seconds: float) -> None:
    # A short first launch for the cold-start figure, with no VOICEGUI_HOME: the log must land in
    # platformdirs' user log folder under HOME. Then the run with the engine going.
    user_home = smoke.out / "user-home"
    xdg = {k: "" for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")}
    first = smoke.run(
        [str(exe), "--smoke", "1"], timeout=60, VOICEGUI_HOME="", HOME=str(user_home), **xdg
    )
    user_log = _platformdirs_log(user_home)
    smoke.extra_logs.append(user_log)
    smoke.check(
        "without VOICEGUI_HOME the log goes to the platformdirs user log folder",
        user_log.is_file() and "window shown" in user_log.read_text(errors="replace"),
        str(user_log.relative_to(smoke.out)),
    )
    r = smoke.run(
        [str(exe), "--smoke", f"{seconds:g}"], timeout=seconds + 60, VOICEGUI_SMOKE_START="1"
    )
    shown = [float(m) for m in re.findall(r"window shown ([\d.]+) s", first.stdout + r.stdout)]
    if shown:
        smoke.facts["gui_window_shown_s"] = shown
    log = home / "logs" / "voicegui.log"
    log_text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    started = re.search(r"engine started in (\d+) ms at (\d+) Hz", log_text)
    ok = (
        first.rc == 0
        and r.rc == 0
        and "voicegui smoke: ok" in r.stdout
        and started is not None
        and "torch' in sys.modules: True" not in r.stdout
    )
    detail = (
        f"window shown after {shown} s (first, second launch); "
        f"{started.group(0) if started else 'engine did NOT start'}; rc={first.rc}/{r.rc}"
    )
    if not ok:
        detail += ": " + (r.stdout + r.stderr)[-600:]
    smoke.check(f"GUI offscreen {seconds:g} s with the engine running", ok, detail, r.seconds)


def _platformdirs_log(home: Path) -> Path:
    """Where platformdirs puts voicegui's log for a user whose home is ``home``."""
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "voicegui" / "voicegui.log"
    return home / ".local" / "state" / "voicegui" / "log" / "voicegui.log"


def check_install(smoke: Smoke, bundle: Path) -> None:
    fake_home = smoke.out / "home"
    env = {"HOME": str(fake_home), "XDG_DATA_HOME": ""}
    r = smoke.run(["sh", str(bundle / "install.sh"), "--in-place"], timeout=60, **env)
    data = fake_home / ".local" / "share"
    desktop = data / "applications" / "voicegui.desktop"
    launcher = fake_home / ".local" / "bin" / "voicegui"
    icon = data / "icons" / "hicolor" / "256x256" / "apps" / "voicegui.png"
    ok = r.rc == 0 and desktop.is_file() and icon.is_file() and launcher.is_symlink()
    detail = f"rc={r.rc}"
    if ok:
        text = desktop.read_text(encoding="utf-8")
        ok = (
            f'Exec="{bundle / "voicegui"}"' in text
            and launcher.resolve() == (bundle / "voicegui").resolve()
        )
        if shutil.which("desktop-file-validate"):
            v = subprocess.run(
                ["desktop-file-validate", str(desktop)], capture_output=True, text=True
            )
            ok = ok and v.returncode == 0
            detail += f", desktop-file-validate: {v.stdout.strip() or 'clean'}"
    u = smoke.run(["sh", str(bundle / "install.sh"), "--uninstall"], timeout=60, **env)
    ok = ok and u.rc == 0 and not desktop.exists() and not launcher.exists()
    smoke.check(
        "install.sh --in-place / --uninstall (menu entry, icon, ~/.local/bin)",
        ok,
        detail if ok else detail + ": " + (r.stdout + r.stderr + u.stderr)[-400:],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build (or reuse) a bundle and smoke-test it.")
    p.add_argument("--flavour", choices=("lite", "full"), default="lite")
    p.add_argument("--dist", type=Path, default=ROOT / "dist")
    p.add_argument("--out", type=Path, help="folder for logs and the summary (default: a temp)")
    p.add_argument("--gui-seconds", type=float, default=5.0)
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("--no-reuse", action="store_true", help="always rebuild")
    args = p.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("the smoke test runs the Linux bundle; see packaging/README.md for other systems")
        return 0

    t0 = time.perf_counter()
    try:
        report = builder.build(args.flavour, args.dist, reuse=not args.no_reuse)
    except builder.PyInstallerUnavailable as exc:
        print(f"cannot build: {exc}", file=sys.stderr)
        return builder.EXIT_NO_PYINSTALLER
    except (RuntimeError, OSError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return builder.EXIT_FAILED
    if not report["ok"]:
        print("build problems: " + "; ".join(report["problems"]), file=sys.stderr)
        return builder.EXIT_FAILED
    print(
        f"bundle voicegui-{args.flavour}: {report['size_mb']} MB, "
        + (
            "reused (inputs unchanged)"
            if report["reused"]
            else f"built in {report['build_seconds']} s"
        ),
        flush=True,
    )

    out = args.out or Path(tempfile.mkdtemp(prefix="voicegui-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.log").write_text("", encoding="utf-8")
    home = out / "voicegui-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    bundle = Path(report["bundle"])
    exe = Path(report["executable"])
    jack_name = f"voicegui-smoke-{os.getpid()}"
    smoke = Smoke(out, clean_env(home, jack_name))

    with jack_server(jack_name, out / "jackd.log") as problem:
        if smoke.check("JACK dummy server", problem is None, problem or jack_name):
            check_bundle_info(smoke, exe, home, args.flavour)
            check_bundled_portaudio(smoke, exe)
            check_devices(smoke, exe)
            check_convert(smoke, exe)
            check_gui(smoke, exe, home, args.gui_seconds)
    check_install(smoke, bundle)
    scan(smoke, home)

    failed = [c for c in smoke.checks if not c.ok]
    summary = {
        "ok": not failed,
        "flavour": args.flavour,
        "bundle": str(bundle),
        "size_mb": report["size_mb"],
        "files": report["files"],
        "build_seconds": report["build_seconds"],
        "reused": report["reused"],
        "gui_window_shown_s": smoke.facts.get("gui_window_shown_s"),
        "neural_probes": smoke.facts.get("bundle_info", {}).get("neural_probes"),
        "onnxruntime_providers": smoke.facts.get("bundle_info", {})
        .get("packages", {})
        .get("onnxruntime", {})
        .get("available_providers"),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "checks": [asdict(c) for c in smoke.checks],
        "out": str(out),
    }
    text = json.dumps(summary, indent=2)
    (out / "summary.json").write_text(text + "\n", encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print(
        f"smoke: {len(smoke.checks) - len(failed)}/{len(smoke.checks)} checks ok in "
        f"{summary['total_seconds']} s; logs in {out}"
    )
    return 0 if not failed else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
