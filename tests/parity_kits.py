"""Where a parity kit is, and what it holds: shared by the Seed-VC and RVC kits' fixtures.

A kit's folder comes from its environment variable, else ../shared/fixtures/<name> next to the
repository, so the same tests run unchanged against any kit made the way its README says.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def kit_folder(name: str, variable: str) -> Path:
    return Path(os.environ.get(variable, REPO.parent / "shared" / "fixtures" / name))


def present_kit(path: Path, label: str, variable: str) -> Path:
    """``path``, or the test is skipped saying where the kit was looked for."""
    if not (path / "expected.npz").is_file():
        pytest.skip(f"{label} parity kit not found at {path} (set {variable})")
    return path


def kit_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read into memory."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
