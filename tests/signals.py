"""Test signals and independent analysis tools (deliberately not the app's own algorithms)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def frame_f0(
    x: np.ndarray,
    sr: int,
    hop: float = 0.01,
    win: float = 0.05,
    fmin: float = 40.0,
    fmax: float = 600.0,
    min_corr: float = 0.6,
) -> np.ndarray:
    """Per-frame F0 by normalised autocorrelation (0 where unvoiced)."""
    n, h = int(win * sr), int(hop * sr)
    lag_lo, lag_hi = int(sr / fmax), int(sr / fmin)
    out = []
    for start in range(0, len(x) - n - lag_hi, h):
        a = x[start : start + n].astype(np.float64)
        seg = x[start : start + n + lag_hi].astype(np.float64)
        if np.dot(a, a) < 1e-6 * n:
            out.append(0.0)
            continue
        corr = np.correlate(seg, a, mode="valid")
        energy = np.sqrt(np.convolve(seg * seg, np.ones(n), mode="valid") * np.dot(a, a))
        nc = corr / np.maximum(energy, 1e-12)
        k = lag_lo + int(np.argmax(nc[lag_lo:lag_hi]))
        # prefer the shortest lag whose correlation is nearly as good (avoids octave-down errors)
        best = nc[k]
        for div in (4, 3, 2):
            kk = int(round(k / div))
            if kk >= lag_lo:
                lo, hi = max(lag_lo, kk - 2), kk + 3
                k2 = lo + int(np.argmax(nc[lo:hi]))
                if nc[k2] > 0.9 * best:
                    k = k2
                    break
        if nc[k] < min_corr:
            out.append(0.0)
            continue
        a_, b_, c_ = nc[k - 1], nc[k], nc[k + 1]
        den = a_ - 2 * b_ + c_
        frac = 0.5 * (a_ - c_) / den if den < 0 else 0.0
        out.append(sr / (k + frac))
    return np.array(out)


def envelope_scale(
    x: np.ndarray, y: np.ndarray, sr: int, fmin: float = 300.0, fmax: float = 4000.0
) -> float:
    """Factor s that best maps the long-term spectral envelope of x onto y: env_y(s f) ~ env_x(f).

    The envelope is the cepstrally smoothed long-term average spectrum, which ignores the
    harmonic fine structure (the pitch) and keeps the formant shape.
    """

    def envelope(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nfft = 2048
        frames = [
            sig[i : i + nfft] * np.hanning(nfft) for i in range(0, len(sig) - nfft, nfft // 4)
        ]
        power = np.mean([np.abs(np.fft.rfft(f)) ** 2 for f in frames], axis=0) + 1e-12
        cep = np.fft.irfft(np.log(power))
        lifter = int(sr / 1000 * 1.5)  # keep quefrencies below 1.5 ms: envelope only
        cep[lifter:-lifter] = 0.0
        return np.fft.rfftfreq(nfft, 1 / sr), np.fft.rfft(cep).real

    f, ex = envelope(x)
    _, ey = envelope(y)
    band = (f >= fmin) & (f <= fmax)
    best, best_s = -np.inf, 1.0
    for s in np.exp(np.linspace(np.log(0.4), np.log(2.5), 1200)):
        ey_s = np.interp(f[band] * s, f, ey)
        a, b = ex[band] - ex[band].mean(), ey_s - ey_s.mean()
        c = float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
        if c > best:
            best, best_s = c, s
    return best_s


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """(clean + scaled noise, scaled noise) with the whole-signal power ratio ``snr_db``."""
    g = np.sqrt(np.mean(clean**2.0) / np.mean(noise**2.0) / 10.0 ** (snr_db / 10.0))
    scaled = (g * noise).astype(np.float32)
    return (clean + scaled).astype(np.float32), scaled


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019); float64 inside."""
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    target = (np.dot(ref, est) / np.dot(ref, ref)) * ref
    err = est - target
    return float(10.0 * np.log10(np.dot(target, target) / np.dot(err, err)))


def masked_snr_improvement(
    clean: np.ndarray, noise: np.ndarray, mixture: np.ndarray, output: np.ndarray, sr: int
) -> tuple[float, float, float]:
    """(SNR improvement, speech attenuation, noise attenuation) in dB of a suppressor.

    The suppressor's time-frequency gain is read off its output over its input
    (|Y| / |X| per STFT bin, at most 1) and applied to the clean speech and the noise
    separately: how much more it takes off the noise than off the speech. ``output`` must be
    aligned with ``mixture`` (the suppressor's delay removed).
    """
    from scipy.signal import stft

    kw = {"fs": sr, "nperseg": int(0.02 * sr), "noverlap": int(0.01 * sr)}
    s, n, x, y = (stft(v.astype(np.float64), **kw)[2] for v in (clean, noise, mixture, output))
    gain = np.minimum(np.abs(y) / (np.abs(x) + 1e-12), 1.0)

    def att(v):
        return float(10.0 * np.log10(np.sum(np.abs(v) ** 2) / np.sum(np.abs(gain * v) ** 2)))

    speech, noise_att = att(s), att(n)
    return noise_att - speech, speech, noise_att
