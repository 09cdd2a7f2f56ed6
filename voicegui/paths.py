"""Where the app keeps things: platformdirs locations, and bundled resources.

VOICEGUI_HOME overrides every user location (config, presets, models, logs, recordings), which
keeps tests and portable installs self-contained. Resources are found the same way from a source
checkout and from a frozen (PyInstaller) bundle.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "voicegui"


def _home() -> Path | None:
    value = os.environ.get("VOICEGUI_HOME")
    return Path(value) if value else None


def _user_dir(kind: str) -> Path:
    home = _home()
    if home is not None:
        path = home / kind
    else:
        import platformdirs

        path = Path(
            {
                "config": platformdirs.user_config_dir,
                "data": platformdirs.user_data_dir,
                "logs": platformdirs.user_log_dir,
                "cache": platformdirs.user_cache_dir,
            }[kind](APP, appauthor=False)
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _user_dir("config")


def presets_dir() -> Path:
    path = config_dir() / "presets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    return _user_dir("data")


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    return _user_dir("cache")


def log_dir() -> Path:
    return _user_dir("logs")


def recordings_dir() -> Path:
    """Where recordings of the voice go: the user's music folder (VOICEGUI_HOME/recordings when
    set). Not created here: the recorder creates it and reports when it cannot."""
    home = _home()
    if home is not None:
        return home / "recordings"
    import platformdirs

    return Path(platformdirs.user_music_dir()) / APP


def bundle_root() -> Path:
    """The folder holding resources/ and models/: the checkout, or the unpacked bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parent.parent


def resource(*parts: str) -> Path:
    return bundle_root().joinpath("resources", *parts)


def catalog_path() -> Path:
    return bundle_root() / "models" / "catalog.toml"
