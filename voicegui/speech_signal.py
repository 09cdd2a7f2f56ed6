"""A speech-like test signal, numpy only (the bench feeds it to the voices)."""

from __future__ import annotations

import numpy as np


def synthetic_speech(seconds: float, sr: int, seed: int = 7) -> np.ndarray:
    """Voiced vowels with a pitch contour, fricative noise and pauses: speech-like load.

    Additive synthesis (harmonics weighted by a formant envelope), numpy only, so the bench
    also runs where scipy is not installed.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t) + 10.0 * np.sin(2 * np.pi * 5.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    out = np.zeros(n)
    seg = int(0.3 * sr)
    for i, start in enumerate(range(0, n, seg)):
        stop = min(n, start + seg)
        kind = i % 5
        if kind == 4:
            continue  # a pause
        if kind == 3:
            out[start:stop] = 0.05 * rng.standard_normal(stop - start)  # fricative
            continue
        formants = vowels[i % len(vowels)]
        for k in range(1, int(4000 / 150)):
            fk = k * f0[start:stop]
            gain = sum(1.0 / (1.0 + ((fk - fc) / 90.0) ** 2) for fc in formants) / k**0.5
            out[start:stop] += gain * np.sin(k * phase[start:stop])
    out *= 0.3 / max(1e-9, np.max(np.abs(out)))
    return out.astype(np.float32)
