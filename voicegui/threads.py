"""Who sets the process's compute threads: the voice, explicitly, never an import.

Libraries change thread settings behind the caller's back: importing ``silero_vad`` calls
``torch.set_num_threads(1)`` at import time, which silently made every torch voice run on one
core (measured: Seed-VC's content, CFM and vocoder stages all ~1.9x slower on 2 cores). And
torch's intra-op count is per thread: ``torch.set_num_threads`` sets the calling thread's
OpenMP count and the default for threads that have not run torch yet, while a thread that
already ran torch keeps its own count. So the voice owns the setting:

* imports that are known to touch it run inside :func:`preserved_torch_threads`;
* the model calls :func:`own_torch_threads` on the thread that runs it, at the start of each
  block (a cheap compare when nothing changed);
* onnxruntime sessions get their intra-op count from :func:`compute_threads` and no spinning
  (``providers.session_options``), so an idle session does not burn a core the audio and GUI
  threads need.

``VOICEGUI_THREADS`` overrides the count (e.g. to leave a core to a game).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ENV = "VOICEGUI_THREADS"


def physical_cores() -> int:
    """Physical cores this process may use (SMT siblings share execution units)."""
    n = None
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = _sysfs_cores()
    logical = os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = logical
    n = n or logical
    # with an affinity mask narrower than the machine, scale the physical count down with it
    return max(1, min(n, allowed) if allowed >= logical else max(1, allowed * n // logical))


def _sysfs_cores() -> int | None:
    root = Path("/sys/devices/system/cpu")
    cores = set()
    for topo in root.glob("cpu[0-9]*/topology"):
        try:
            cores.add(
                (
                    (topo / "physical_package_id").read_text().strip(),
                    (topo / "core_id").read_text().strip(),
                )
            )
        except OSError:
            continue
    return len(cores) or None


def compute_threads() -> int:
    """Intra-op threads for a voice: the physical cores, or ``VOICEGUI_THREADS``."""
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            pass
    return physical_cores()


def own_torch_threads(n: int | None = None) -> int:
    """Make the calling thread run torch ops on ``n`` (default :func:`compute_threads`) threads.

    Also the default for threads that have not run torch yet. Returns the count in force.
    """
    import torch

    n = n or compute_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def preserved_torch_threads() -> Iterator[None]:
    """Undo whatever the body (an import, a library's loader) does to torch's thread count."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None:
            want = before if before is not None else compute_threads()
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)
