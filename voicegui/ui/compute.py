"""Where a neural voice can run: inference backends and compute devices, probed lazily.

Knowing whether CUDA or an Apple GPU is usable needs torch, which takes a second or two to import
and must never be imported at startup (DESIGN rule 6). ``probe_devices`` is therefore called off
the GUI thread, and only once a neural voice is involved; its answer is cached for the process.
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
)
ALWAYS = ("auto", "cpu")  # listed before (and whatever) the probe says

_lock = threading.Lock()
_devices: tuple[str, ...] | None = None


def probed_devices() -> tuple[str, ...] | None:
    """The devices found by an earlier probe, or None when no probe ran yet (never imports)."""
    return _devices


def probe_devices() -> tuple[str, ...]:
    """Compute devices usable here, in DEVICES order. Imports torch: call it from a worker."""
    global _devices
    with _lock:
        if _devices is not None:
            return _devices
        found = list(ALWAYS)
        try:
            import torch

            if torch.cuda.is_available():
                found.append("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                found.append("mps")
        except Exception as exc:  # no torch at all: the neural voice will say why when loaded
            log.info("compute device probe: %s", exc)
        _devices = tuple(found)
        log.info("compute devices: %s", ", ".join(_devices))
        return _devices
