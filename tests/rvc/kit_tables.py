"""The settings tables of the RVC kit's README, read as data (so another kit made the same way,
with other settings, needs no change to the tests).

* the offline runs: ``| tag | model | f0 method | key | index_rate | rms_mix_rate | protect |
  p_len | upp |``;
* the real-time streams: ``| setting | s1 | s2 |`` with the settings and the integers the GUI
  derives from them (block_frame, skip_head, return_length, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _table_after(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith(header_start))
    rows = []
    for ln in lines[start:]:
        if not ln.strip().startswith("|"):
            break
        cells = [c.strip().strip("`") for c in ln.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        rows.append(cells)
    return rows


def offline_runs(kit: Path) -> dict[str, dict[str, str]]:
    """tag -> {model, f0 method, key, index_rate, rms_mix_rate, protect, p_len, upp}."""
    rows = _table_after((kit / "README.md").read_text(encoding="utf-8"), "| tag | model |")
    header, body = rows[0], rows[1:]
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in body}


def stream_settings(kit: Path) -> dict[str, dict[str, str]]:
    """stream (s1, s2, ...) -> {setting: value} of the real-time table."""
    rows = _table_after((kit / "README.md").read_text(encoding="utf-8"), "| setting |")
    header, body = rows[0], rows[1:]
    streams = header[1:]
    return {s: {r[0]: r[1 + i] for r in body} for i, s in enumerate(streams)}


def stream_blocks(expected: dict, stream: str) -> list[str]:
    """Prefixes 'sN_bK_' of the stream's blocks present in the kit, in order."""
    k, out = 1, []
    while f"{stream}_b{k}_synth_out" in expected:
        out.append(f"{stream}_b{k}_")
        k += 1
    return out


def upsample_features(feats: np.ndarray, frames: int) -> torch.Tensor:
    """(1, T, C) content features at 50/s -> (1, frames, C) at 100/s: nearest x2, cut."""
    x = torch.from_numpy(np.ascontiguousarray(feats))
    return F.interpolate(x.transpose(1, 2), scale_factor=2).transpose(1, 2)[:, :frames]


def stream_block_features(expected: dict, prefix: str) -> np.ndarray:
    """The features one real-time block hands the synthesizer (before upsampling): the block's
    HuBERT features plus a copy of the last frame, with the index blend on the tail rows."""
    feats = expected[prefix + "feats"]
    feats = np.concatenate([feats, feats[:, -1:]], axis=1)
    tail = expected.get(prefix + "feats_blend_tail")
    if tail is not None:
        feats[:, feats.shape[1] - tail.shape[1] :] = tail
    return feats
