"""Logging to a rotating file in the user's log folder (one file per process kind)."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from voicegui import paths

LOG_NAME = "voicegui.log"

__all__ = ["LOG_NAME", "setup_logging", "setup_process_logging"]


def setup_logging(level: int = logging.INFO, name: str = LOG_NAME) -> Path:
    """Rotating log file in paths.log_dir(); returns its path. Safe to call more than once."""
    path = paths.log_dir() / name
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == path:
            return path
    handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return path


def setup_process_logging(kind: str) -> Path | None:
    """A helper process (the audio host) logs beside the app: voicegui-<kind>.log."""
    try:
        return setup_logging(name=f"voicegui-{kind}.log")
    except OSError:  # an unwritable log folder must not stop the audio
        return None
