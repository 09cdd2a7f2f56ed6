"""The Windows app, installed and used as a person on Windows would: under Wine on Linux (the
test command), or natively on a Windows machine (the release workflow).

Under Wine, the lite build (packaging/build.py --os windows) is made once per source tree and
reused while its inputs are unchanged (dist/windows/, keyed by the input hash); the pinned Windows
Python and wheels come from the build cache, which scripts/setup.sh fills: nothing is downloaded
here. Then, in a fresh Wine prefix with a headless PipeWire and its virtual microphone:

1. the installer installs silently (/S), per user, with its shortcuts and uninstall entry;
2. the installed voicegui.exe shows its window offscreen (the engine running) and exits cleanly;
3. voicegui-cli.exe lists WASAPI, MME and DirectSound with PipeWire's devices, and ASIO (empty);
4. `convert` of speech in a folder with non-ASCII characters;
5. `bench --loopback` on WASAPI: the audio host process runs the built-in voice from the virtual
   microphone to the virtual output; clicks time the round trip and the shifted tone comes back;
6. the uninstaller removes the program and leaves the user's presets.

On Windows the same tests run on the machine itself, against `build.py --archive --installer`'s
output; the devices and the loopback need a loopback pair named in VOICEGUI_TEST_LOOPBACK
(``INPUT|OUTPUT`` device names, e.g. VB-CABLE's) and are skipped, saying so, without one.
VOICEGUI_TEST_FLAVOUR=full tests the full flavour. Skipped only where Wine cannot be installed
(neither Windows nor Linux, or Linux without apt).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.packaging.pipewire import MICROPHONE, OUTPUT, missing_tools, virtual_microphone
from tests.packaging.test_bundle import builder
from tests.pipewire import PipeWire
from tests.signals import espeak, frame_f0
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "packaging"))  # appended: packaging/build.py must not shadow PyPI's
import windows_build  # noqa: E402
import windows_toolchain as wt  # noqa: E402

NATIVE = sys.platform == "win32"
FLAVOUR = os.environ.get("VOICEGUI_TEST_FLAVOUR", "lite")
WASAPI, MME, DSOUND, ASIO = "Windows WASAPI", "MME", "Windows DirectSound", "ASIO"
BAD_OUTPUT = ("Traceback (most recent call last)", "Fatal Python error", "ImportError")
LOG_ERROR = re.compile(r"^\S+ \S+ (ERROR|CRITICAL)\b", re.MULTILINE)
# Qt's offscreen platform on Windows reads fonts from a folder (its Windows platform asks the
# system); without one, text is drawn as boxes
FONTS = (
    Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts"
    if NATIVE
    else Path("/usr/share/fonts/truetype/dejavu")  # Debian: fonts-dejavu-core
)
# the built-in voice's pitch accuracy, as tests/core/test_dsp_voice.py asserts it
PITCH_CENTS = 15.0


def _no_wine() -> str | None:
    return None if NATIVE else wt.wine_missing()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (NATIVE or sys.platform.startswith("linux"))
        or (_no_wine() is not None and shutil.which("apt-get") is None),
        reason=f"Wine cannot be installed here: {_no_wine()}",
    ),
]


def loopback_pair() -> tuple[str, str] | None:
    """(input, output) device names whose output returns to the input outside the app."""
    if not NATIVE:
        return MICROPHONE, OUTPUT  # the headless PipeWire's virtual microphone
    named = os.environ.get("VOICEGUI_TEST_LOOPBACK", "")
    return tuple(named.split("|", 1)) if "|" in named else None  # type: ignore[return-value]


# ---- fixtures: the build, a fresh prefix with the app installed, a headless PipeWire --------
@pytest.fixture(scope="module")
def facts(output_dir):
    """Figures the tests measure, written to test-output/packaging/windows-<flavour>.json."""
    data: dict = {"native": NATIVE, "flavour": FLAVOUR}
    yield data
    out = output_dir / "packaging"
    out.mkdir(exist_ok=True)
    (out / f"windows-{FLAVOUR}.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")


@pytest.fixture(scope="module")
def build(facts) -> dict:
    problem = _no_wine()
    if problem:  # here apt could install it: a set-up step is missing, not a reason to skip
        pytest.fail(f"{problem}: scripts/setup.sh installs it", pytrace=False)
    t0 = time.perf_counter()
    try:
        if NATIVE:
            report = builder.build(
                FLAVOUR, ROOT / "dist", reuse=True, make_archive=True, make_installer=True
            )
        else:
            report = windows_build.build(FLAVOUR, builder.version(), reuse=True, offline=True)
    except wt.NotDownloaded as exc:
        pytest.fail(str(exc), pytrace=False)
    assert report["ok"], report["problems"]
    assert report.get("installer"), "the build made no installer (build.py --installer)"
    facts["build"] = {
        k: report.get(k)
        for k in ("reused", "size_mb", "files", "archive_mb", "installer_mb", "total_seconds")
    }
    facts["build"]["seconds_here"] = round(time.perf_counter() - t0, 1)
    return report


@pytest.fixture(scope="module")
def pipewire():
    if NATIVE:
        yield None  # the machine's own devices
        return
    missing = missing_tools()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: scripts/setup.sh installs them")
    with virtual_microphone() as pw:
        yield pw


class WinUser:
    """A Windows user who runs the installed app: a fresh Wine prefix, or (on Windows) the
    user running the tests."""

    def __init__(self, prefix: Path, pipewire: PipeWire | None) -> None:
        self.runs: list[subprocess.CompletedProcess] = []
        self.wine: wt.Wine | None = None
        if NATIVE:
            return
        # a Linux home of its own: Wine links the Windows Desktop to $HOME/Desktop and turns
        # shortcuts into menu entries under XDG_DATA_HOME (the real user's must stay untouched)
        home = prefix.parent / "home"
        self.wine = wt.Wine(
            prefix,
            {
                "HOME": str(home),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                **(pipewire.env if pipewire else {}),
            },
        )

    def run(self, args: list[str], timeout: float = 180, **env: str):
        """Run a Windows program; QT_* variables are passed as WINEQT_* (Wine drops QT_*)."""
        if self.wine is not None:
            result = self.wine.run(["wine", *args], timeout=timeout, env=env)
        else:
            extra = {(k[4:] if k.startswith("WINEQT_") else k): v for k, v in env.items()}
            base = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEGUI_", "QT_"))}
            proc = subprocess.run(
                args, env={**base, **extra}, capture_output=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            result = subprocess.CompletedProcess(
                args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                proc.stderr.decode("utf-8", "replace"),
            )  # fmt: skip
        self.runs.append(result)
        return result

    def wait(self) -> None:
        if self.wine is not None:
            self.wine.wait()

    def winvar(self, name: str) -> str:
        if NATIVE:
            return os.environ[name]
        out = self.run(["cmd", "/c", f"echo %{name}%"]).stdout.strip()
        assert out and "%" not in out, f"{name}: {out!r}"
        return out

    def path(self, windows: str) -> Path:
        return Path(windows) if self.wine is None else wt.linux_path(self.wine.prefix, windows)

    @staticmethod
    def arg(path: Path) -> str:
        """How a Windows program is given a path of the test machine."""
        return str(path) if NATIVE else wt.windows_path(path)


@pytest.fixture(scope="module")
def user(tmp_path_factory, pipewire, build, facts):
    t0 = time.perf_counter()
    user = WinUser(tmp_path_factory.mktemp("wine") / "prefix", pipewire)
    if user.wine is not None:
        user.wine.boot()
        facts["fresh_prefix_seconds"] = round(time.perf_counter() - t0, 1)
    user.local = user.winvar("LOCALAPPDATA")
    user.appdata = user.winvar("APPDATA")
    user.desktop = user.path(user.winvar("USERPROFILE")) / "Desktop"
    yield user
    if user.wine is not None:
        user.wine.kill()


@pytest.fixture(scope="module")
def installed(user, build, facts) -> Path:
    t0 = time.perf_counter()
    r = user.run([user.arg(Path(build["installer"])), "/S"], timeout=300)
    user.wait()  # the installer's own child processes
    facts["install_seconds"] = round(time.perf_counter() - t0, 1)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = user.path(user.local) / "Programs" / "voicegui"
    assert (folder / "voicegui.exe").is_file(), sorted(folder.parent.rglob("*"))[:20]
    facts["installed_mb"] = round(
        sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1
    )
    return folder


def user_data(user: WinUser) -> Path:
    return user.path(user.local) / "voicegui"


def assert_clean(result, what: str) -> None:
    text = result.stdout + result.stderr
    bad = [b for b in BAD_OUTPUT if b in text]
    assert result.returncode == 0 and not bad, f"{what}: rc={result.returncode}\n{text[-3000:]}"


def assert_logs_clean(user: WinUser) -> dict[str, str]:
    logs = {p.name: p.read_text("utf-8", "replace") for p in (user_data(user) / "Logs").glob("*")}
    for name, text in logs.items():
        errors = LOG_ERROR.findall(text) or [b for b in BAD_OUTPUT if b in text]
        assert not errors, f"{name}:\n{text[-3000:]}"
    return logs


# ---- the tests, in the order a person goes through them ------------------------------------
def test_installer_installs_per_user_with_shortcuts_and_an_uninstall_entry(user, installed, build):
    bundle = Path(build["bundle"])
    shipped = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    present = {p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file()}
    assert present == shipped | {"uninstall.exe"}
    assert any((installed / "_internal/_sounddevice_data/portaudio-binaries").glob("*asio*.dll"))
    start_menu = user.path(user.appdata) / "Microsoft/Windows/Start Menu/Programs"
    assert (start_menu / "voicegui.lnk").is_file()
    assert (user.desktop / "voicegui.lnk").is_file()
    key = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\voicegui"
    entry = user.run(["reg", "query", key])
    assert entry.returncode == 0 and "uninstall.exe" in entry.stdout, entry.stdout
    # per user: nothing machine-wide (no admin rights were asked for)
    machine = user.run(["reg", "query", key.replace("HKCU", "HKLM")])
    assert machine.returncode != 0


def test_gui_shows_its_window_offscreen_runs_the_engine_and_exits_cleanly(
    user, installed, output_dir, facts
):
    shot = output_dir / "packaging" / f"windows-{FLAVOUR}-window.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    with_audio = loopback_pair() is not None  # the engine needs devices to start on
    r = user.run(
        [str(installed / "voicegui.exe"), "--smoke", "4"],
        timeout=180,
        WINEQT_QPA_PLATFORM="offscreen",  # Wine hands it to the app as QT_QPA_PLATFORM
        WINEQT_QPA_FONTDIR=user.arg(FONTS) if FONTS.is_dir() else "",
        VOICEGUI_SMOKE_START="1" if with_audio else "",
        VOICEGUI_SCREENSHOT=user.arg(shot),
    )
    assert_clean(r, "voicegui.exe --smoke")
    logs = assert_logs_clean(user)
    log = logs.get("voicegui.log", "")
    shown = re.search(r"window shown ([\d.]+) s.*Qt platform offscreen", log)
    started = re.search(r"engine started in (\d+) ms at (\d+) Hz", log + logs.get(
        "voicegui-audio-host.log", ""))  # fmt: skip
    assert shown and (started or not with_audio), log[-3000:]
    assert "voicegui exiting (0)" in log
    assert shot.is_file() and shot.stat().st_size > 10_000  # the window, drawn
    facts["gui"] = {
        "window_shown_s": float(shown.group(1)),
        "engine": started.group(0) if started else "not started (no devices)",
    }


def test_devices_lists_wasapi_mme_directsound_and_an_empty_asio(user, installed, facts):
    cli = str(installed / "voicegui-cli.exe")
    r = user.run([cli, "devices", "--json"])
    assert_clean(r, "devices --json")
    devices = json.loads(r.stdout)
    by_api: dict[str, list[dict]] = {}
    for d in devices:
        by_api.setdefault(d["hostapi"], []).append(d)
    pair = loopback_pair()
    for api in (WASAPI, MME, DSOUND) if pair else ():
        names = {(d["name"], d["max_input_channels"] > 0) for d in by_api.get(api, [])}
        assert (pair[0], True) in names and (pair[1], False) in names, (api, names)
    if not NATIVE:
        assert not by_api.get(ASIO), "no ASIO driver is installed under Wine"

    info = json.loads(user.run([cli, "--bundle-info"]).stdout)["portaudio"]
    assert {WASAPI, MME, DSOUND} <= set(info["hostapis"]), info
    assert ASIO in info["hostapis"], info  # ASIO on by default: its PortAudio build is loaded
    assert info["library"].endswith("libportaudio64bit-asio.dll"), info
    # and the switch that turns it off really does (the check above can fail)
    off = json.loads(user.run([cli, "--bundle-info"], VOICEGUI_NO_ASIO="1").stdout)["portaudio"]
    assert ASIO not in off["hostapis"] and "asio" not in off["library"], off
    facts["host_apis"] = info["hostapis"]
    facts["devices"] = {api: len(v) for api, v in by_api.items()}


def test_convert_speech_in_a_folder_with_non_ascii_characters(user, installed, tmp_path):
    import soundfile as sf

    folder = tmp_path / "Stimme – テスト ü"
    folder.mkdir()
    src = folder / "fr_é_声.wav"
    if shutil.which("espeak-ng"):
        espeak("Hello, this is the voice changer on Windows.", src)
    else:  # a Windows machine: the app's own speech-like signal
        from voicegui.speech_signal import synthetic_speech

        sf.write(str(src), synthetic_speech(3.0, 22050), 22050)
    dst = folder / "sortie_é.wav"
    r = user.run(
        [str(installed / "voicegui-cli.exe"), "convert", user.arg(src), user.arg(dst),
         "--voice", "dsp", "--pitch", "5", "--block-time", "0.01"],
    )  # fmt: skip
    assert_clean(r, "convert")
    x, sr_in = sf.read(str(src), dtype="float32")
    y, sr_out = sf.read(str(dst), dtype="float32")
    assert sr_out == sr_in and y.shape == x.shape
    f_in, f_out = frame_f0(x, sr_in), frame_f0(y, sr_out)
    voiced = (f_in > 0) & (f_out > 0)
    assert voiced.mean() > 0.3
    # the voice's latency shifts the frames; the median ratio over voiced frames does not care
    cents = 1200 * math.log2(np.median(f_out[voiced]) / np.median(f_in[voiced])) - 500
    assert abs(cents) <= PITCH_CENTS * 2, cents  # medians of unpaired frames: twice the slack


def test_live_engine_on_wasapi_from_the_virtual_microphone_to_the_virtual_output(
    user, installed, tmp_path, facts
):
    import soundfile as sf

    pair = loopback_pair()
    if pair is None:
        pytest.skip("no loopback device pair here: set VOICEGUI_TEST_LOOPBACK=INPUT|OUTPUT")
    pitch, tone = 5.0, 220.0
    wav = tmp_path / "retour_é.wav"
    r = user.run(
        [str(installed / "voicegui-cli.exe"), "bench", "--loopback",
         "--input", f"{WASAPI}:{pair[0]}", "--output", f"{WASAPI}:{pair[1]}",
         "--voice", "dsp", "--pitch", str(pitch), "--block-time", "0.02",
         "--seconds", "6", "--clicks", "5", "--tone", str(tone),
         "--save-return", user.arg(wav)],
        timeout=240,
    )  # fmt: skip
    assert_clean(r, "bench --loopback")
    result = json.loads(r.stdout)
    # the audio host process (the frozen exe started again by multiprocessing) ran the engine
    host_log = (user_data(user) / "Logs" / "voicegui-audio-host.log").read_text("utf-8")
    assert f"audio host {result['audio_host_pid']} ready" in host_log
    assert "MMCSS" in host_log  # its block thread got Windows' "Pro Audio" priority
    assert result["clicks_returned"] == result["clicks_sent"] == 5, result
    lat = result["latency"]
    # nothing can come back before the voice's own (algorithmic) latency has passed
    assert result["measured_ms"] >= lat["algorithmic_ms"], result
    assert result["dropped_blocks"] == 0, result

    found = result["tone"]
    assert found["found_hz"] and abs(found["cents_off"]) < PITCH_CENTS, found
    # independently of the app's estimate: the recording it saved, analysed here
    back, sr = sf.read(str(wav), dtype="float32")
    a, b = (np.array(found["sent_at_s"]) + result["measured_ms"] / 1e3) * sr
    middle = back[int(a + (b - a) / 5) : int(b - (b - a) / 5)]
    f0 = frame_f0(middle, sr, fmax=1000.0)
    f0 = f0[f0 > 0]
    assert len(f0) > 10
    cents = 1200 * math.log2(np.median(f0) / tone) - 100 * pitch
    assert abs(cents) < PITCH_CENTS, cents
    facts["loopback_wasapi"] = {
        k: result[k]
        for k in ("measured_ms", "computed_end_to_end_ms", "difference_ms", "round_trip_frames",
                  "xruns_in", "xruns_out", "underruns", "dropped_blocks")
    }  # fmt: skip
    facts["loopback_wasapi"]["latency"] = lat
    facts["loopback_wasapi"]["tone"] = found


def test_uninstall_removes_the_program_and_keeps_the_presets(user, installed):
    from voicegui.presets import PresetStore
    from voicegui.settings import Settings, with_changes

    presets = user_data(user) / "presets"
    name = "Ma voix grave é"
    PresetStore(presets).save(name, with_changes(Settings(), voice={"pitch": -4.0}))
    saved = sorted(presets.iterdir())
    # the app finds it where it looks for presets (its own user folder)
    r = user.run([str(installed / "voicegui-cli.exe"), "bench", "--preset", name, "--seconds",
                  "0.5", "--voice", "passthrough"])  # fmt: skip
    assert_clean(r, "a saved preset, used by the app")

    uninstaller = installed / "uninstall.exe"
    u = user.run([str(uninstaller), "/S"], timeout=300)
    user.wait()  # NSIS runs the uninstaller from a copy in TEMP and returns at once
    assert u.returncode == 0, u.stderr[-2000:]
    assert wait_until(lambda: not installed.exists(), 120), sorted(installed.rglob("*"))[:20]
    start_menu = user.path(user.appdata) / "Microsoft/Windows/Start Menu/Programs"
    assert not (start_menu / "voicegui.lnk").exists()
    assert not (user.desktop / "voicegui.lnk").exists()
    key = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\voicegui"
    assert user.run(["reg", "query", key]).returncode != 0
    assert sorted(presets.iterdir()) == saved and saved  # the user's presets stay
    assert (user_data(user) / "Logs" / "voicegui.log").is_file()
