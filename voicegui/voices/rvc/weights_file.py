"""Safe reading of the weight files RVC installs ship (HuBERT/ContentVec, RMVPE).

Every file is read with ``torch.load(weights_only=True)``: no code in a file ever runs. Files
saved by fairseq (the ``hubert_base.pt`` of RVC installs) also pickle a few bookkeeping objects
next to the weights, for instance the label ``fairseq.data.dictionary.Dictionary``, which the
weights-only loader refuses. Those classes (from fairseq, omegaconf and argparse only) are
read into an inert stand-in that just keeps the pickled fields; any other object in a file
(a function, a class from elsewhere) is refused with its name in the message.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from voicegui.voices.seedvc.checkpoints import CheckpointError

# modules whose pickled objects are bookkeeping (configs, vocabularies), never weights or code
INERT_MODULES = ("fairseq.", "omegaconf.", "argparse.")


class InertObject:
    """Stand-in for a bookkeeping object in a checkpoint: keeps its pickled state, does
    nothing else. Never called with code from the file (the weights-only unpickler only builds
    it and sets its state)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: object) -> None:
        self.state = state


def _stand_in(name: str, path: Path) -> tuple[type, str]:
    if not name.startswith(INERT_MODULES):
        raise CheckpointError(
            f"refusing to load {path.name}: it contains an object that is not weights ({name})"
        )
    # one distinct subclass per name: the unpickler maps each name to its own stand-in
    return type(name.rsplit(".", 1)[-1], (InertObject,), {}), name


def _listed_globals(path: Path) -> list[str]:
    try:  # zip checkpoints list their globals up front; legacy files are found out one by one
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return []


_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_MAX_STAND_INS = 32


def _unpickler_detail(exc: Exception) -> str:
    """The weights-only unpickler's own reason, without torch's advice to disable it."""
    text = str(exc)
    _, _, tail = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (tail or text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def read_weights_file(path: str | Path, what: str) -> dict:
    """The top-level dict of a torch checkpoint, read with ``weights_only=True``.

    ``what`` names the file's role in messages ("HuBERT content encoder", "RMVPE").
    Raises CheckpointError for a missing, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: file not found: {path}")
    stand_ins = [_stand_in(n, path) for n in _listed_globals(path)]
    while True:
        try:
            with torch.serialization.safe_globals(stand_ins):
                obj = torch.load(path, map_location="cpu", weights_only=True)
            break
        except pickle.UnpicklingError as exc:
            refused = _REFUSED_GLOBAL.search(str(exc))
            if refused is None or len(stand_ins) >= _MAX_STAND_INS:
                raise CheckpointError(
                    f"{what}: cannot read {path.name}: not a torch weights file, or a corrupt "
                    f"one ({_unpickler_detail(exc)})"
                ) from exc
            stand_ins.append(_stand_in(refused.group(1), path))
        except (EOFError, zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{what}: cannot read {path.name}: the file is truncated or corrupt ({exc})"
            ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{what}: {path.name} holds a {type(obj).__name__}, not weights")
    return dict(obj)
