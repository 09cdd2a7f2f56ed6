"""Triangular mel filterbanks with the numbers librosa.filters.mel gives (librosa is not a
dependency). RMVPE uses the HTK mel scale, FCPE the Slaney scale; both use Slaney's area
normalisation (each triangle integrates to the same value over Hz).

librosa computes in float64 and stores the triangles in float32 before normalising them; the
same two roundings happen here, so the tables are the same on every CPU.
"""

from __future__ import annotations

import math

import numpy as np

_SLANEY_HZ_PER_MEL = 200.0 / 3  # linear part: 66.7 Hz per mel
_SLANEY_LOG_HZ = 1000.0  # log part starts here
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, htk: bool) -> np.ndarray:
    f = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    log_start = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
    high = log_start + np.log(np.maximum(f, 1e-300) / _SLANEY_LOG_HZ) / _SLANEY_LOG_STEP
    return np.where(f >= _SLANEY_LOG_HZ, high, f / _SLANEY_HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray | float, htk: bool) -> np.ndarray:
    m = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    log_start = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
    high = _SLANEY_LOG_HZ * np.exp(_SLANEY_LOG_STEP * (m - log_start))
    return np.where(m >= log_start, high, _SLANEY_HZ_PER_MEL * m)


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool
) -> np.ndarray:
    """(n_mels, n_fft//2 + 1) float32 triangles, edges equally spaced in mel, area-normalised."""
    bins_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sr / n_fft)
    edges = mel_to_hz(
        np.linspace(float(hz_to_mel(fmin, htk)), float(hz_to_mel(fmax, htk)), n_mels + 2), htk
    )
    widths = np.diff(edges)
    to_edge = edges[:, None] - bins_hz[None, :]
    rising = -to_edge[:-2] / widths[:-1, None]
    falling = to_edge[2:] / widths[1:, None]
    tri = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area = 2.0 / (edges[2:] - edges[:-2])
    return (tri.astype(np.float64) * area[:, None]).astype(np.float32)
