"""The PyInstaller bundle: fast checks of the packaging pieces, and the full smoke test (slow).

The smoke test builds the lite bundle (or reuses dist/voicegui-lite when its inputs have not
changed) and runs it from the bundle: devices on JACK, convert, the GUI with the engine running,
install.sh. It skips only when PyInstaller cannot be installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _load(name: str, path: Path):
    # by path and under a private name: "build" would shadow the PyPI package of that name
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


builder = _load("voicegui_packaging_build", PACKAGING / "build.py")
cfg = _load("voicegui_packaging_config", PACKAGING / "bundle_config.py")


# ---- fast: no build ----------------------------------------------------------------------------
def test_lite_excludes_the_neural_stack_and_full_keeps_it():
    lite, full = cfg.excludes("lite"), cfg.excludes("full")
    for name in ("torch", "onnxruntime", "transformers", "silero_vad", "huggingface_hub", "scipy"):
        assert name in lite
        assert name not in full
    assert "PySide6.QtQml" in lite and "PySide6.QtWebEngineCore" in full
    with pytest.raises(ValueError):
        cfg.excludes("medium")


def test_rvc_parts_only_in_full():
    lite, full = cfg.excludes("lite"), cfg.excludes("full")
    for name in ("faiss", "torchfcpe"):
        assert name in lite and name not in full


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF run paths")
def test_faiss_libraries_keep_the_layout_their_run_path_expects():
    """Every library libfaiss.so needs from the wheel lands where its RPATH looks."""
    import shutil
    import subprocess

    pairs = cfg.faiss_binaries()
    if not pairs or shutil.which("readelf") is None:
        pytest.skip("faiss or readelf not installed")
    dest = {Path(src).name: folder for src, folder in pairs}
    libfaiss = next(src for src, folder in pairs if Path(src).name.startswith("libfaiss"))
    assert dest[Path(libfaiss).name] == "faiss"
    dyn = subprocess.run(["readelf", "-d", libfaiss], capture_output=True, text=True).stdout
    rpath = re.search(r"R(?:UN)?PATH.*\[(.*)\]", dyn).group(1)
    # the folders the loader searches, relative to the bundle's root (libfaiss sits in faiss/)
    folders = {os.path.normpath(p.replace("$ORIGIN", "faiss")) for p in rpath.split(":")}
    bundled = [n for n in re.findall(r"NEEDED.*\[(.*)\]", dyn) if n in dest]
    assert bundled  # OpenBLAS and the OpenMP runtime come with the wheel
    for name in bundled:
        assert dest[name] in folders, (name, dest[name], rpath)


def test_fcpe_weights_found_in_a_bundle(tmp_path, monkeypatch):
    from voicegui.voices.rvc import fcpe

    weights = tmp_path / fcpe.BUNDLED_PACKAGE / fcpe.BUNDLED_FILE
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert fcpe.bundled_weights_path() == weights


def test_dropped_qt_files():
    assert cfg.dropped_qt_data("PySide6/Qt/translations/qtbase_de.qm")
    assert cfg.dropped_qt_data("PySide6/Qt/plugins/platforms/libqvnc.so")
    assert cfg.dropped_qt_data("PySide6\\Qt\\plugins\\sqldrivers\\qsqlite.dll")
    assert not cfg.dropped_qt_data("PySide6/Qt/plugins/platforms/libqxcb.so")
    assert not cfg.dropped_qt_data("PySide6/Qt/plugins/platforms/libqoffscreen.so")
    assert not cfg.dropped_qt_data("PySide6/Qt/plugins/iconengines/libqsvgicon.so")
    # Wayland desktops: the platform plugin and its shell integrations ship in the bundle
    assert not cfg.dropped_qt_data("PySide6/Qt/plugins/platforms/libqwayland.so")
    assert not cfg.dropped_qt_data("PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so")


def test_setup_installs_what_the_wayland_plugins_load():
    """The bundle check resolves the Wayland plugins' libraries on the build machine."""
    import re

    text = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    block = re.search(r"APT_PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    packages = set(re.sub(r"#[^\n]*", "", block).split())
    assert {"libwayland-client0", "libwayland-cursor0", "libwayland-egl1"} <= packages


def test_input_hash_covers_sources_resources_spec_and_catalog():
    rel = {f.relative_to(ROOT).as_posix() for f in cfg.input_files()}
    assert "voicegui/cli.py" in rel
    assert "packaging/voicegui.spec" in rel
    assert "models/catalog.toml" in rel
    assert "pyproject.toml" in rel
    assert any(r.startswith("resources/") for r in rel)
    assert "packaging/smoke_test.py" not in rel  # editing the test must not force a rebuild
    assert cfg.input_hash("lite") != cfg.input_hash("full")


def _pngs() -> dict[int, bytes]:
    png = (ROOT / "resources" / "icons" / "voicegui.png").read_bytes()
    return {16: png, 32: png, 256: png, 1024: png}


def test_ico_holds_png_entries(tmp_path):
    path = tmp_path / "x.ico"
    builder.write_ico(_pngs(), path)
    data = path.read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind, count) == (0, 1, 3)  # 1024 is too big for .ico and left out
    for i in range(count):
        entry = struct.unpack_from("<BBBBHHII", data, 6 + 16 * i)
        size, offset = entry[6], entry[7]
        assert data[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + size <= len(data)
    assert data[6] == 16 and data[6 + 32] == 0  # 256 px is written as 0


def test_icns_is_well_formed(tmp_path):
    path = tmp_path / "x.icns"
    builder.write_icns(_pngs(), path)
    data = path.read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    pos, kinds = 8, []
    while pos < len(data):
        kind, size = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        kinds.append(kind)
        assert data[pos + 8 : pos + 16] == b"\x89PNG\r\n\x1a\n"
        pos += size
    assert pos == len(data) and kinds == [b"icp4", b"icp5", b"ic08", b"ic10"]


def test_version_file_evaluates_like_pyinstaller_reads_it(tmp_path):
    path = tmp_path / "version_info.txt"
    builder.write_version_file("0.1.0", path)

    def node(name):
        return lambda *args, **kwargs: (name, args, kwargs)

    names = [
        "VSVersionInfo",
        "FixedFileInfo",
        "StringFileInfo",
        "StringTable",
        "StringStruct",
        "VarFileInfo",
        "VarStruct",
    ]
    tree = eval(path.read_text(encoding="utf-8"), {n: node(n) for n in names})
    assert tree[0] == "VSVersionInfo"
    assert tree[2]["ffi"][2]["filevers"] == (0, 1, 0, 0)
    assert "ProductVersion" in path.read_text(encoding="utf-8")


def test_spec_bundles_resources_where_paths_finds_them():
    spec = (PACKAGING / "voicegui.spec").read_text(encoding="utf-8")
    assert '(str(ROOT / "resources"), "resources")' in spec
    assert '(str(ROOT / "models" / "catalog.toml"), "models")' in spec
    assert "NSMicrophoneUsageDescription" in spec
    assert "asio" in spec and "voicegui-cli" in spec


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script")
def test_install_script_on_a_fake_bundle(tmp_path):
    bundle = tmp_path / "voicegui-lite"
    icons = bundle / "_internal" / "resources" / "icons"
    icons.mkdir(parents=True)
    for name in ("voicegui.png", "voicegui.svg"):
        (icons / name).write_bytes((ROOT / "resources" / "icons" / name).read_bytes())
    (bundle / "voicegui").write_text("#!/bin/sh\necho fake\n", encoding="utf-8")
    (bundle / "voicegui").chmod(0o755)
    for name in ("install.sh", "voicegui.desktop"):
        (bundle / name).write_bytes((PACKAGING / "linux" / name).read_bytes())
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME="")

    r = subprocess.run(["sh", str(bundle / "install.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    app = home / ".local" / "share" / "voicegui-app"
    desktop = home / ".local" / "share" / "applications" / "voicegui.desktop"
    assert (app / "voicegui").is_file() and (app / ".installed-by-voicegui").is_file()
    assert f'Exec="{app / "voicegui"}"' in desktop.read_text(encoding="utf-8")
    assert (home / ".local" / "bin" / "voicegui").resolve() == (app / "voicegui").resolve()
    assert (home / ".local/share/icons/hicolor/scalable/apps/voicegui.svg").is_file()

    r = subprocess.run(
        ["sh", str(bundle / "install.sh"), "--uninstall"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert not app.exists() and not desktop.exists()
    assert not (home / ".local" / "bin" / "voicegui").exists()


# ---- slow: build (or reuse) and run the bundle -----------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle is tested here")
def test_lite_bundle_smoke(tmp_path, output_dir):
    summary = output_dir / "packaging" / "smoke-lite.json"
    cmd = [
        sys.executable,
        str(PACKAGING / "smoke_test.py"),
        "--out",
        str(tmp_path),
        "--json",
        str(summary),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    output = proc.stdout + proc.stderr
    if proc.returncode == builder.EXIT_NO_PYINSTALLER:
        pytest.skip("PyInstaller cannot be installed: " + output.strip()[-500:])
    assert proc.returncode == 0, output[-6000:]
    result = json.loads(summary.read_text(encoding="utf-8"))
    assert result["ok"] and all(c["ok"] for c in result["checks"])
    print(output[-1500:])
