"""Where a neural voice can run: inference backends and compute devices, probed lazily.

Knowing whether CUDA or an Apple GPU is usable needs torch, which never loads in the window's
process: the audio host probes (once a neural voice is involved) and the answer is kept here.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

BACKENDS = (("PyTorch", "torch"), ("ONNX Runtime", "onnx"))
DEVICES = (
    ("Automatic", "auto"),
    ("CPU", "cpu"),
    ("CUDA GPU", "cuda"),
    ("Apple GPU (MPS)", "mps"),
    ("Remote GPU (a voicegui server)", "remote"),
)
ALWAYS = ("auto", "cpu")  # listed before (and whatever) the probe says

_lock = threading.Lock()
_devices: tuple[str, ...] | None = None


def probed_devices() -> tuple[str, ...] | None:
    """The devices found by an earlier probe, or None when no probe ran yet (never imports)."""
    return _devices


def set_probed(devices: tuple[str, ...] | list[str]) -> None:
    """Remember what the audio host found (it probes: torch never loads in this process)."""
    global _devices
    with _lock:
        _devices = tuple(devices)
