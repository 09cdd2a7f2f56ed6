"""Tolerances of the index retrieval (derivation: test_index.py's docstring)."""

from __future__ import annotations

import math

import numpy as np

U = 2.0**-24


def distance_tolerance(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(T, k) bound on |d2_ours - d2_kit| for queries (T, D) and their neighbours (T, k, D)."""
    q = np.linalg.norm(queries.astype(np.float64), axis=-1)[:, None]
    v = np.linalg.norm(vectors.astype(np.float64), axis=-1)
    d = queries.shape[-1]
    return 2 * (0.41 * math.sqrt(d) + 3) * U * (q + v) ** 2


def blend_rounding_tolerance(vectors, ix, score, feats, rate) -> np.ndarray:
    w = np.square(1 / score.astype(np.float64))
    w /= w.sum(axis=1, keepdims=True)
    mass = np.sum(np.abs(vectors[ix].astype(np.float64)) * w[..., None], axis=1)
    return 11 * U * rate * mass + 2 * U * np.abs(feats)


def searched_blend_tolerance(feats, vectors, ix, score, rate) -> np.ndarray:
    """Bound on the blend from our own search against upstream's: the distances' rounding
    moves the weights (2 w_k (e_k + sum_j w_j e_j)), plus the blend's own rounding."""
    e = distance_tolerance(feats, vectors[ix]) / score
    w = np.square(1 / score.astype(np.float64))
    w /= w.sum(axis=1, keepdims=True)
    dw = 2 * w * (e + np.sum(w * e, axis=1, keepdims=True))
    moved = rate * np.sum(dw[..., None] * np.abs(vectors[ix]), axis=1)
    return moved + blend_rounding_tolerance(vectors, ix, score, feats, rate)
