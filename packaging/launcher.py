"""The script PyInstaller freezes: `voicegui` with no arguments opens the window, otherwise the CLI.

`voicegui --bundle-info` (bundle only) prints JSON about the bundle itself: where it finds its
resources, catalog and user folders, which PortAudio library it loaded and which host APIs it sees,
and which optional packages (torch, onnxruntime, ...) it carries. The smoke test reads it; a user
can paste it into a bug report.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from importlib.util import find_spec
from typing import Any

BUNDLE_JSON = "voicegui-bundle.json"  # written into the bundle by packaging/build.py


def _loaded_libraries(fragment: str) -> list[str]:
    if not sys.platform.startswith("linux"):
        return []  # (under Wine /proc/self/maps would be the Wine process's Linux view)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split()[-1] for line in f if fragment in line and "/" in line}
    except OSError:
        return []
    return sorted(paths)


def _optional(name: str, probe: bool) -> dict[str, Any]:
    if find_spec(name) is None:
        return {"present": False}
    info: dict[str, Any] = {"present": True}
    if probe:
        try:
            mod = __import__(name)
            info["version"] = getattr(mod, "__version__", "?")
            if name == "onnxruntime":
                info["available_providers"] = mod.get_available_providers()
            if name == "torch":
                info["cuda_available"] = bool(mod.cuda.is_available())
        except Exception as exc:  # report, never crash: this is a diagnostic
            info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def _neural_probes() -> dict[str, str]:
    """Full bundle: the neural stack really loads and runs from the bundle (no weights needed)."""

    def torch_op() -> str:
        import torch

        return f"{float((torch.ones(3) @ torch.arange(3.0)).item()):g}"

    def silero_vad() -> str:
        import numpy as np

        from voicegui.voices.vad import SileroSpeechDetector

        detector = SileroSpeechDetector()  # its ONNX model is package data in the bundle
        return f"speech={detector(np.zeros(3200, dtype=np.float32), 16000)}"

    def seedvc_modules() -> str:
        import importlib

        importlib.import_module("voicegui.voices.seedvc.voice")
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        return f"{Wav2Vec2Model.__name__}, {Wav2Vec2Config.__name__}"

    def tls_ca_certs() -> str:
        import ssl  # model downloads: the bundled OpenSSL must find the system's CA certificates

        count = ssl.create_default_context().cert_store_stats()["x509_ca"]
        if not count:
            raise RuntimeError("no CA certificates found (set SSL_CERT_FILE)")
        return f"{count} CA certificates"

    out: dict[str, str] = {}
    for name, probe in (
        ("torch_op", torch_op),
        ("silero_vad_onnx", silero_vad),
        ("seedvc_modules", seedvc_modules),
        ("tls_ca_certs", tls_ca_certs),
    ):
        try:
            out[name] = "ok: " + probe()
        except Exception as exc:
            out[name] = f"error: {type(exc).__name__}: {exc}"
    return out


def _namespace_modules() -> set[str]:
    """Modules of namespace packages (no __init__.py), which walk_packages does not enter."""
    from voicegui import paths

    meta_file = paths.bundle_root() / BUNDLE_JSON
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return set(meta.get("modules", []))


def _module_probe() -> dict[str, Any]:
    """Import every voicegui module in the bundle: a module PyInstaller missed fails here."""
    import importlib
    import pkgutil

    import voicegui

    names = sorted(
        {
            m.name
            for m in pkgutil.walk_packages(voicegui.__path__, "voicegui.")
            if m.name != "voicegui.__main__"  # importing it runs the CLI
        }
        | _namespace_modules()
    )
    failures: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
    return {"modules": len(names), "failures": failures}


def bundle_info(probe_imports: bool = False) -> dict[str, Any]:
    from voicegui import __version__, paths

    root = paths.bundle_root()
    meta_file = root / BUNDLE_JSON
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    presets = sorted(p.name for p in paths.resource("presets").glob("*.json"))
    info: dict[str, Any] = {
        "version": __version__,
        "frozen": bool(getattr(sys, "frozen", False)),
        "flavour": meta.get("flavour"),
        "build": meta,
        "executable": sys.executable,
        "bundle_root": str(root),
        "resources": {
            "icon_svg": paths.resource("icons", "voicegui.svg").is_file(),
            "icon_png": paths.resource("icons", "voicegui.png").is_file(),
            "presets": presets,
            "catalog": paths.catalog_path().is_file(),
        },
        "user_dirs": {
            "config": str(paths.config_dir()),
            "presets": str(paths.presets_dir()),
            "data": str(paths.data_dir()),
            "models": str(paths.models_dir()),
            "cache": str(paths.cache_dir()),
            "logs": str(paths.log_dir()),
        },
        "env": {
            k: os.environ.get(k) for k in ("LD_LIBRARY_PATH", "VOICEGUI_PORTAUDIO", "SSL_CERT_FILE")
        },
    }
    try:
        from voicegui.audio.backend import sounddevice

        sd = sounddevice()
        info["portaudio"] = {
            "version": sd.get_portaudio_version()[1],
            "library": getattr(sd, "_libname", None),
            "loaded": _loaded_libraries("libportaudio") or None,
            "libjack": _loaded_libraries("libjack") or None,
            "hostapis": [h["name"] for h in sd.query_hostapis()],
        }
    except Exception as exc:
        info["portaudio"] = {"error": f"{type(exc).__name__}: {exc}"}
    info["packages"] = {
        name: _optional(name, probe_imports)
        for name in (
            "torch",
            "onnxruntime",
            "transformers",
            "silero_vad",
            "scipy",
            "soxr",
            "soundfile",
            "huggingface_hub",
            "safetensors",
        )
    }
    if probe_imports:
        info["voicegui_modules"] = _module_probe()
    if probe_imports and info["packages"]["torch"]["present"]:
        info["neural_probes"] = _neural_probes()
    return info


def main() -> int:
    multiprocessing.freeze_support()  # torch/DataLoader-style workers re-enter the frozen exe
    args = sys.argv[1:]
    if args[:1] == ["--bundle-info"]:
        print(json.dumps(bundle_info(probe_imports="--imports" in args), indent=2))
        return 0
    from voicegui.cli import main as cli_main

    try:
        return cli_main(args)
    except ModuleNotFoundError as exc:
        if not getattr(sys, "frozen", False):
            raise
        # the lite bundle leaves out torch, scipy, huggingface_hub...: say so, not a traceback
        from voicegui import paths

        meta_file = paths.bundle_root() / BUNDLE_JSON
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        flavour = meta.get("flavour", "this")
        print(
            f"voicegui: '{' '.join(args[:2])}' needs the Python package {exc.name!r}, which the "
            f"{flavour} bundle does not include. The full bundle has the neural voices, model "
            "downloads and the benchmark.",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    # stdout/stderr are None in a windowed Windows/macOS exe; keep prints harmless
    if sys.stdout is None or sys.stderr is None:
        devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as we do)
        sys.stdout = sys.stdout or devnull
        sys.stderr = sys.stderr or devnull
    sys.exit(main())
