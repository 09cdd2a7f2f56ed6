"""A cheap CPU pitch estimator for RVC voices: YIN (de Cheveigne & Kawahara, 2002) in numpy.

No weights and no torch: for the real-time preset on a slow CPU, or when neither RMVPE nor
FCPE is available. Same frame grid as the neural estimators (hop 160 at 16 kHz, frame t centred
on sample 160 t, N // 160 + 1 frames), 0 Hz for unvoiced frames, so it drops into the same f0
post-processing.

Per frame: the difference function d(tau) = sum_j (x_j - x_{j+tau})^2 over a 32 ms window,
from FFT cross-correlations and running energies; its cumulative-mean normalisation
d'(tau) = d(tau) tau / sum_{k<=tau} d(k); the first dip below the threshold, followed to its
local minimum and refined by a parabola through its neighbours. Frames with no dip below the
threshold, or too quiet to carry a pitch, are unvoiced.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
HOP = 160
WINDOW = 512  # integration window: 32 ms
F0_MIN = 50.0  # RVC's coarse pitch range
F0_MAX = 1100.0
THRESHOLD = 0.25  # on the normalised difference: lower = stricter voicing
SILENCE_RMS = 10 ** (-60 / 20)  # below -60 dBFS a frame is unvoiced


class Yin:
    """``f0(wav16k)`` -> (N // 160 + 1,) Hz, float32, 0 = unvoiced."""

    def __init__(
        self,
        f0_min: float = F0_MIN,
        f0_max: float = F0_MAX,
        threshold: float = THRESHOLD,
        window: int = WINDOW,
    ) -> None:
        if not 0 < f0_min < f0_max < SAMPLE_RATE / 4:
            raise ValueError(f"f0 range {f0_min}..{f0_max} Hz does not fit 16 kHz audio")
        self.tau_min = max(2, int(SAMPLE_RATE / f0_max))
        self.tau_max = int(np.ceil(SAMPLE_RATE / f0_min))
        self.threshold = threshold
        self.window = window
        self.span = window + self.tau_max  # samples one frame reads
        self.nfft = 1 << (self.span + window - 1).bit_length()

    def _frames(self, wav: np.ndarray) -> np.ndarray:
        n = wav.shape[0]
        frames = n // HOP + 1
        half = self.span // 2
        padded = np.pad(wav, (half, half + self.span))
        starts = np.arange(frames) * HOP
        view = np.lib.stride_tricks.sliding_window_view(padded, self.span)
        return view[starts]

    def difference(self, frames: np.ndarray) -> np.ndarray:
        """(F, span) frames -> (F, tau_max + 1) difference function d(tau)."""
        w, tmax = self.window, self.tau_max
        x = frames.astype(np.float64)
        spec_full = np.fft.rfft(x, self.nfft)
        spec_head = np.fft.rfft(x[:, :w], self.nfft)
        # c(tau) = sum_{j<w} x_j x_{j+tau}
        corr = np.fft.irfft(spec_full * np.conj(spec_head), self.nfft)[:, : tmax + 1]
        energy = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x**2, axis=1)], axis=1)
        taus = np.arange(tmax + 1)
        e_shift = energy[:, taus + w] - energy[:, taus]  # sum_{j<w} x_{j+tau}^2
        return np.maximum(e_shift[:, :1] + e_shift - 2 * corr, 0.0)

    def f0(self, wav16k: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav16k, dtype=np.float64).reshape(-1)
        frames = self._frames(wav)
        d = self.difference(frames)
        tau = np.arange(1, d.shape[1])
        cum = np.cumsum(d[:, 1:], axis=1)
        norm = np.ones_like(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            norm[:, 1:] = np.where(cum > 0, d[:, 1:] * tau / cum, 1.0)
        out = np.zeros(frames.shape[0], dtype=np.float32)
        rms = np.sqrt(np.mean(frames[:, : self.window] ** 2, axis=1))
        lo, hi = self.tau_min, self.tau_max
        below = norm[:, lo:hi] < self.threshold
        for i in np.flatnonzero(below.any(axis=1) & (rms > SILENCE_RMS)):
            t = lo + int(np.argmax(below[i]))
            while t + 1 < hi and norm[i, t + 1] < norm[i, t]:  # walk down to the dip's bottom
                t += 1
            a, b, c = norm[i, t - 1], norm[i, t], norm[i, t + 1]
            bend = a - 2 * b + c
            shift = 0.5 * (a - c) / bend if bend > 0 else 0.0
            out[i] = SAMPLE_RATE / (t + float(np.clip(shift, -1, 1)))
        return out
