"""Which compute devices a neural voice can use here. Imports torch: the audio host runs it."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

ALWAYS = ("auto", "cpu")  # listed before (and whatever) the probe says

_lock = threading.Lock()
_devices: tuple[str, ...] | None = None


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


def torch_device(choice: str = "auto"):
    """The torch device for a VoiceSettings.device choice: CUDA > MPS > CPU when 'auto'."""
    import torch

    if choice and choice != "auto":
        try:
            return torch.device(choice)
        except RuntimeError as exc:
            raise ValueError(f"unknown compute device '{choice}' ({exc})") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
