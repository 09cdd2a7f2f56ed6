"""Feature retrieval from a voice model's ``.index`` (faiss): each content frame is pulled
towards the training speaker's own frames.

For every frame the 8 nearest stored vectors (squared L2, the index's own search settings: an
IVF index probes as many lists as the file says) are averaged with weights 1/d^4 (d^2 is what
faiss returns), and the result is blended with the frame: ``rate * retrieved + (1 - rate) *
frame``. The arithmetic follows RVC's numpy/torch float32 order, so the blend is exact given
the same neighbours and distances.

The file is read from bytes, so paths with non-ASCII characters work on every OS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

NEIGHBOURS = 8


class FeatureIndexError(RuntimeError):
    """An index file cannot be used; the message says why."""


class FeatureIndex:
    def __init__(self, index, vectors: np.ndarray, name: str = "index") -> None:
        self.index = index
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.name = name
        self.skipped = 0  # searches that found too few neighbours (the blend was skipped)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def load(cls, path: str | Path) -> FeatureIndex:
        import faiss

        path = Path(path)
        if not path.is_file():
            raise FeatureIndexError(f"index not found: {path}")
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        if data.size == 0:
            raise FeatureIndexError(f"{path.name} is empty")
        try:
            index = faiss.deserialize_index(data)
        except Exception as exc:  # faiss raises RuntimeError with its C++ message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FeatureIndexError(
                f"cannot read {path.name}: the file is truncated or corrupt, or not a faiss "
                f"index ({first})"
            ) from exc
        if index.metric_type != faiss.METRIC_L2:
            raise FeatureIndexError(f"{path.name} is not an L2 index; RVC indices are L2")
        if index.ntotal == 0:
            raise FeatureIndexError(
                f"{path.name} holds no vectors: it is a trained_*.index; use the "
                f"added_*.index next to it"
            )
        if index.ntotal < NEIGHBOURS:
            raise FeatureIndexError(
                f"{path.name} holds {index.ntotal} vectors; retrieval needs at least {NEIGHBOURS}"
            )
        try:
            vectors = index.reconstruct_n(0, index.ntotal)
        except Exception as exc:
            msg = f"{path.name}: its vectors cannot be read back ({exc})"
            raise FeatureIndexError(msg) from exc
        return cls(index, vectors, path.name)

    def search(self, feats: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """feats (T, D) -> squared distances (T, k) float32 and ids (T, k) int64."""
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise FeatureIndexError(
                f"{self.name} holds {self.dim}-d vectors; the features are {feats.shape[-1]}-d "
                f"(a v1 model needs a 256-d index, a v2 model a 768-d one)"
            )
        score, ix = self.index.search(feats, k)
        return score, ix

    def retrieve(self, score: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """The weighted mean of the neighbours (T, D), weights 1/score^2 normalised per row."""
        weight = np.square(1 / score)
        weight /= weight.sum(axis=1, keepdims=True)
        return np.sum(self.vectors[ix] * np.expand_dims(weight, axis=2), axis=1)


def blend(feats, retrieved: np.ndarray, rate: float):
    """rate * retrieved + (1 - rate) * feats, in float32 and in RVC's order (torch tensors)."""
    r = torch.from_numpy(np.ascontiguousarray(retrieved)).to(feats.device, feats.dtype)
    return r * rate + (1 - rate) * feats


def apply_index(feats, index: FeatureIndex, rate: float, start: int = 0, incomplete: str = "skip"):
    """Blend rows ``start..`` of feats (torch (T, D)) with what ``index`` retrieves for them.

    A row with fewer than k neighbours (an IVF list holding fewer vectors) gets faiss's id -1
    and an infinite distance. ``incomplete="skip"`` leaves all rows unblended then (RVC's
    real-time path; counted in ``index.skipped``); ``"ignore"`` gives the missing neighbours
    zero weight (what RVC's file conversion ends up doing).
    """
    if rate <= 0 or index is None or start >= feats.shape[0]:
        return feats
    rows = feats[start:]
    score, ix = index.search(rows.detach().float().cpu().numpy())
    out = feats.clone()
    if (ix < 0).any():
        if incomplete == "skip":
            index.skipped += 1
            return feats
        found = (ix >= 0).any(axis=1)  # rows with no neighbour at all stay as they are
        score = np.where(ix >= 0, score, np.inf).astype(np.float32)
        retrieved = index.retrieve(score[found], np.maximum(ix[found], 0))
        sel = torch.from_numpy(np.flatnonzero(found)) + start
        out[sel] = blend(rows[torch.from_numpy(found)], retrieved, rate)
        return out
    out[start:] = blend(rows, index.retrieve(score, ix), rate)
    return out
