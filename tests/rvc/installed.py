"""The kit's files by what they are (the names come from the kit's own script)."""

from __future__ import annotations

from pathlib import Path


def kit_model(assets: Path, version: str = "v2") -> Path:
    """A voice model the kit's script wrote, of that version (the highest rate first)."""
    found = sorted((assets / "weights").glob(f"*{version}*.pth"), key=lambda p: p.stem[-3:])
    return found[-1]


def kit_index(assets: Path) -> Path:
    return sorted((assets / "indices").glob("*.index"))[0]
