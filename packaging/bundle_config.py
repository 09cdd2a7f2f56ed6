"""What goes into each bundle flavour: shared by the spec, build.py and the smoke test.

lite: the built-in voice only (numpy, soxr, soundfile, sounddevice, Qt, pyqtgraph).
full: lite + torch + onnxruntime (+ transformers, safetensors, huggingface_hub, silero-vad,
scipy) for the neural voices.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "voicegui"
FLAVOURS = ("lite", "full")

# Python packages that are never part of the app (dev tools, test tools, optional extras of
# pyqtgraph/numpy that a modulegraph walk would otherwise drag in).
ALWAYS_EXCLUDED = [
    "tkinter",
    "_tkinter",
    "matplotlib",
    "PIL",
    "IPython",
    "pandas",
    "pytest",
    "_pytest",
    "pytestqt",
    "pyworld",
    "importlinter",
    "grimp",
    "ruff",
    "OpenGL",
    "cupy",
    "h5py",
    "numba",
    "pyqtgraph.examples",
    "pyqtgraph.opengl",  # 3D views need PyOpenGL; the app draws 2D plots only
    "pyqtgraph.jupyter",
    "PyInstaller",
    "setuptools",
    "pip",
    "readline",  # interactive prompts only; it would bring libreadline and libtinfo
]

# The neural stack: torch and onnxruntime and everything that exists only for them.
NEURAL = [
    "torch",
    "sympy",  # torch's dependencies: torch imports them (the full bundle needs them)
    "mpmath",
    "networkx",
    "jinja2",
    "torchaudio",
    "torchvision",
    "functorch",
    "onnxruntime",
    "onnx",
    "onnxscript",  # the torch -> ONNX exporter (voicegui/voices/onnx/export.py)
    "onnx_ir",
    "ml_dtypes",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "hf_xet",
    "silero_vad",
    "faiss",  # RVC feature retrieval (voicegui/voices/rvc/index.py)
    "torchfcpe",  # ships RVC's FCPE pitch weights (read as data, never imported)
    "tqdm",
    "regex",
    "fsspec",
    "filelock",
    "yaml",
    "scipy",  # only voicegui/bench.py's synthetic speech and the neural front-ends use it
    "psutil",  # optional: the onnx voice counts physical cores with it (numpy.testing too)
    # TLS (OpenSSL, ~5 MB) serves only model downloads; hashlib has its own sha256 without it
    "ssl",
    "_ssl",
    "_hashlib",
]

# Qt bindings the app does not use (PySide6-Essentials ships most of these; Addons the rest).
QT_EXCLUDED = [
    f"PySide6.{m}"
    for m in [
        "Qt3DAnimation",
        "Qt3DCore",
        "Qt3DExtras",
        "Qt3DInput",
        "Qt3DLogic",
        "Qt3DRender",
        "QtBluetooth",
        "QtCharts",
        "QtConcurrent",
        "QtDataVisualization",
        "QtDBus",
        "QtDesigner",
        "QtGraphs",
        "QtGraphsWidgets",
        "QtHelp",
        "QtHttpServer",
        "QtLocation",
        "QtMultimedia",
        "QtMultimediaWidgets",
        "QtNetwork",
        "QtNetworkAuth",
        "QtNfc",
        "QtPdf",
        "QtPdfWidgets",
        "QtPositioning",
        "QtPrintSupport",
        "QtQml",
        "QtQuick",
        "QtQuick3D",
        "QtQuickControls2",
        "QtQuickTest",
        "QtQuickWidgets",
        "QtRemoteObjects",
        "QtScxml",
        "QtSensors",
        "QtSerialBus",
        "QtSerialPort",
        "QtSpatialAudio",
        "QtSql",
        "QtStateMachine",
        "QtTextToSpeech",
        "QtUiTools",
        "QtTest",
        "QtWebChannel",
        "QtWebEngineCore",
        "QtWebEngineQuick",
        "QtWebEngineWidgets",
        "QtWebSockets",
        "QtWebView",
        "QtXml",
        "QtCanvasPainter",
    ]
]

# Qt plugin folders/files (relative to PySide6/Qt/plugins) that a desktop voice changer never
# loads: kiosk platforms, designer, QML tooling, printing, SQL, network information, TLS.
QT_PLUGINS_DROPPED = [
    "designer",
    "qmltooling",
    "qmllint",
    "sqldrivers",
    "printsupport",
    "networkinformation",
    "tls",
    "egldeviceintegrations",
    "generic",
    "vectorimageformats",
    "platforminputcontexts/libqtvirtualkeyboardplugin",
    # GTK theme: would pull in all of GTK 3 (~25 MB) from the build machine; the app uses the
    # Fusion style, and the xdg-desktop-portal theme still gives native file dialogs
    "platformthemes/libqgtk3",
    "platforms/libqeglfs",
    "platforms/libqlinuxfb",
    "platforms/libqminimalegl",
    "platforms/libqvnc",
    "platforms/libqvkkhrdisplay",
    "platforms/qdirect2d",
    "imageformats/libqpdf",
    "imageformats/qpdf",
    "imageformats/libqtiff",
    "imageformats/qtiff",
    "imageformats/libqwebp",
    "imageformats/qwebp",
    "imageformats/libqtga",
    "imageformats/qtga",
    "imageformats/libqwbmp",
    "imageformats/qwbmp",
]

# Qt libraries that only the dropped plugins and bindings need.
QT_LIBS_DROPPED = [
    "libQt6Network.so",
    "libQt6EglFSDeviceIntegration.so",
    "libQt6EglFsKmsSupport.so",
    "libQt6Test.so",
]

# Shared libraries taken from the user's system, never from the build machine (as AppImage's
# exclude list does): libasound loads its PulseAudio/PipeWire plugins from a distribution-specific
# folder; libstdc++/libgcc_s must be at least as new as anything else the process loads (system
# libjack, ALSA plugins, GL drivers); libmvec is part of glibc; fontconfig/freetype/expat must
# match the system's font configuration; libX11 must match the system's libxcb.
SYSTEM_ONLY_LIBS = [
    "libasound.so",
    "libpulse",
    "libpipewire",
    "libstdc++.so",
    "libgcc_s.so",
    "libmvec.so",
    "libfontconfig.so",
    "libfreetype.so",
    "libexpat.so",
    "libX11.so",
    "libX11-xcb.so",
]

# Linux: PortAudio and what only it needs; kept in _internal/portaudio/ (off the library search
# path) so that a system libportaudio2 loads the system's libjack. See rthooks/.
PORTAUDIO_LIBS = ["libportaudio.so", "libjack.so", "libdb-5"]


def faiss_binaries() -> list[tuple[str, str]]:
    """faiss's libraries where its extension's RPATH looks for them: libfaiss.so next to it in
    faiss/, OpenBLAS and the OpenMP/Fortran runtimes in faiss_cpu.libs/ (the wheel's layout)."""
    import importlib.util

    spec = importlib.util.find_spec("faiss")
    if spec is None or not spec.submodule_search_locations:
        return []
    package = Path(next(iter(spec.submodule_search_locations)))
    out = [(str(p), "faiss") for p in sorted(package.glob("libfaiss*.so*"))]
    libs = package.parent / "faiss_cpu.libs"
    out += [(str(p), "faiss_cpu.libs") for p in sorted(libs.glob("*.so*"))]
    return out


def excludes(flavour: str) -> list[str]:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    out = ALWAYS_EXCLUDED + QT_EXCLUDED
    if flavour == "lite":
        out += NEURAL
    return out


def dropped_qt_data(dest: str) -> bool:
    """True for Qt files (plugins, translations) that the bundle leaves out."""
    d = dest.replace("\\", "/")
    if "PySide6/Qt/translations/" in d or "PySide6/translations/" in d:
        return True  # the UI is English-only; Qt's own dialogs fall back to English
    marker = "PySide6/Qt/plugins/"
    if marker not in d:
        return False
    rel = d.split(marker, 1)[1]
    return any(
        rel == p or rel.startswith(p + "/") or rel.startswith(p + ".") for p in QT_PLUGINS_DROPPED
    )


def source_modules() -> list[str]:
    """Every voicegui module in the source tree, namespace packages (no __init__.py) included,
    which PyInstaller's collect_submodules() would skip; not __main__, which runs the CLI."""
    out = []
    for f in sorted((ROOT / "voicegui").rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            out.append(".".join(parts))
    return out


def _files(patterns: list[tuple[str, str]]) -> list[Path]:
    out: list[Path] = []
    for folder, glob in patterns:
        out += sorted(p for p in (ROOT / folder).glob(glob) if p.is_file())
    return out


def input_files() -> list[Path]:
    """Everything a bundle is built from, in the repository (for the cache key)."""
    files = _files(
        [
            ("voicegui", "**/*.py"),
            ("resources", "**/*"),
            ("packaging", "bundle_config.py"),
            ("packaging", "build.py"),
            ("packaging", "launcher.py"),
            ("packaging", "*.spec"),
            ("packaging", "rthooks/*.py"),
            ("packaging/linux", "*"),
            ("packaging/macos", "*"),
            ("packaging/windows", "*"),
        ]
    )
    files += [ROOT / "models" / "catalog.toml", ROOT / "pyproject.toml"]
    return [f for f in files if f.is_file() and "__pycache__" not in f.parts]


def _sources_hash(h) -> None:
    for f in input_files():
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())


def input_hash(flavour: str) -> str:
    """Key for reusing a bundle: sources, resources, spec, and the installed packages."""
    from importlib import metadata

    h = hashlib.sha256()
    h.update(f"{flavour}\n{sys.version}\n{sys.platform}\n".encode())
    _sources_hash(h)
    dists = sorted(
        f"{d.metadata['Name']}=={d.version}".lower()
        for d in metadata.distributions()
        if d.metadata["Name"]
    )
    h.update("\n".join(dists).encode())
    return h.hexdigest()


def windows_input_hash(flavour: str, toolchain: str) -> str:
    """Key for reusing a Windows bundle built on Linux under Wine: sources, resources, spec,
    the build scripts and the Windows pins (packaging/windows/*, part of input_files), and
    ``toolchain`` (the Wine version): nothing of the Linux environment."""
    h = hashlib.sha256()
    h.update(f"windows\n{flavour}\n{toolchain}\n".encode())
    _sources_hash(h)
    for extra in ("windows_toolchain.py", "windows_build.py", "windows_installer.py"):
        f = ROOT / "packaging" / extra
        if f.is_file():
            h.update(extra.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# The PortAudio DLLs of sounddevice's wheel that match the bundle's architecture (the wheel also
# carries 32-bit and arm64 builds): libportaudio64bit.dll and libportaudio64bit-asio.dll.
PORTAUDIO_WINDOWS_ARCH = "64bit"

# Windows builds are named for the release page: voicegui-<version>-windows-x64-<flavour>
WINDOWS_ARCH = "x64"


def release_name(flavour: str, version: str, system: str, machine: str) -> str:
    """voicegui-<version>-<system>-<arch>-<flavour>: the folder, .zip and installer names."""
    arch = WINDOWS_ARCH if system == "windows" else machine.lower()
    return f"{APP}-{version}-{system}-{arch}-{flavour}"


def report_path(dist: Path, flavour: str) -> Path:
    """Where a build writes its report (JSON) in ``dist``."""
    return dist / f"voicegui-{flavour}.json"


def reusable(dist: Path, flavour: str, key: str, needed: list[str]) -> dict | None:
    """The previous report when it was built from exactly these inputs and every file this
    build is to make (``needed`` as the report names them: its report keys) still exists."""
    import json

    try:
        old = json.loads(report_path(dist, flavour).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if old.get("input_hash") != key or not old.get("ok"):
        return None
    if not all(old.get(k) and Path(old[k]).exists() for k in needed):
        return None
    return old
