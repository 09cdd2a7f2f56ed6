"""Safe loading of the published Seed-VC / HiFT / CAMPPlus checkpoint files.

Every load uses ``weights_only=True``: no arbitrary object is ever unpickled.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or does not fit the model."""


def read_checkpoint(path: str | Path) -> dict:
    """Read a torch checkpoint with ``weights_only=True``; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path.name}: the file is truncated or corrupt ({exc})"
        ) from exc
    except Exception as exc:  # pickle.UnpicklingError for disallowed globals and the like
        raise CheckpointError(f"refusing to load {path.name}: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def find_state_dict(obj: Mapping, component: str | None = None) -> dict:
    """Return the state dict of ``component`` from a training checkpoint.

    Seed-VC checkpoints keep the model under ``net`` next to optimizer and scheduler state;
    other files are a bare state dict. Whatever else sits beside ``net`` is ignored.
    """
    net = obj.get("net", obj) if isinstance(obj, Mapping) else obj
    if component is None:
        return dict(net)
    if component not in net:
        raise CheckpointError(
            f"checkpoint has no '{component}' entry (found: {', '.join(sorted(map(str, net)))})"
        )
    return dict(net[component])


def load_into(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    what: str,
    rename: Callable[[str], str] | None = None,
    recomputable: Iterable[str] = (),
) -> None:
    """Copy ``state`` into ``module`` strictly: every learned parameter present with its shape.

    ``recomputable`` lists suffixes of buffers that are pure functions of their shape (position
    indices): they may be missing or have another length in the file and are then left as built.
    Raises CheckpointError naming every missing, unexpected or mis-shaped key.
    """
    recomputable = tuple(recomputable)
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(recomputable)]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state
        and tuple(state[k].shape) != tuple(own[k].shape)
        and not k.endswith(recomputable)
    ]
    problems = []
    if missing:
        problems.append(
            f"missing keys: {', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else "")
        )
    if unexpected:
        problems.append(
            f"unexpected keys: {', '.join(unexpected[:20])}"
            + (" ..." if len(unexpected) > 20 else "")
        )
    if misshaped:
        problems.append(f"wrong shapes: {', '.join(misshaped[:20])}")
    if problems:
        raise CheckpointError(f"{what}: " + "; ".join(problems))
    with torch.no_grad():
        for k, target in own.items():
            if k not in state or tuple(state[k].shape) != tuple(target.shape):
                continue  # a recomputable buffer kept as built
            target.copy_(state[k].to(target.dtype))
