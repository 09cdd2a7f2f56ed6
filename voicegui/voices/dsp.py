"""The built-in voice: pitch and formant shifting by streaming TD-PSOLA, no weights, CPU only.

Why PSOLA: speech is a train of glottal pulses filtered by the vocal tract. Cutting the input into
short grains around each pulse and laying them out at a new spacing changes the pitch while every
grain keeps its spectral envelope (formants). Resampling each grain by a factor scales its envelope
independently of the pitch. Grains are at most 2*HALF_MAX long, so the voice needs only 2*HALF_MAX
of lookahead (12 ms), unlike a phase vocoder whose windows must span several pitch periods.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from voicegui.voices.base import BlockInfo

HALF_MAX = 0.006  # s: longest grain half-width; the lookahead is twice this
UNVOICED_HOP = 0.006  # s: grain spacing where no pitch is found (noise is copied, not shifted)
F0_MIN, F0_MAX = 60.0, 600.0
PITCH_RATE = 12000  # pitch is tracked on a decimated copy: cheap and ample for F0 < 1 kHz
PITCH_WINDOW = 0.04  # s of signal the pitch tracker looks at
YIN_THRESHOLD = 0.15
VOICING_LIMIT = 0.35  # a dip of the normalised difference above this is treated as unvoiced


def yin_period(x: np.ndarray, sr: int, fmin: float = F0_MIN, fmax: float = F0_MAX) -> float | None:
    """Pitch period in samples of ``x`` (YIN with parabolic refinement), or None if unvoiced."""
    tau_max = int(sr / fmin) + 1
    tau_min = max(2, int(sr / fmax))
    n = len(x) - tau_max
    if n < tau_max // 2 or float(np.dot(x, x)) < 1e-9 * len(x):
        return None
    x = x.astype(np.float64)
    head = x[:n]
    r = np.correlate(x[: n + tau_max], head, mode="valid")  # r[t] = sum head * x[t:t+n]
    sq = np.concatenate(([0.0], np.cumsum(x * x)))
    e_lag = sq[n : n + tau_max + 1] - sq[: tau_max + 1]  # energy of x[t:t+n]
    d = sq[n] + e_lag - 2.0 * r
    d[0] = 0.0
    cum = np.cumsum(d[1:])
    cmnd = np.ones_like(d)
    cmnd[1:] = d[1:] * np.arange(1, len(d)) / np.maximum(cum, 1e-12)
    seg = cmnd[tau_min:tau_max]
    below = np.flatnonzero(seg < YIN_THRESHOLD)
    if len(below):
        t = below[0]
        while t + 1 < len(seg) and seg[t + 1] < seg[t]:  # walk down to the local minimum
            t += 1
    else:
        t = int(np.argmin(seg))
        if seg[t] > VOICING_LIMIT:
            return None
    tau = t + tau_min
    if 1 <= tau < len(cmnd) - 1:
        a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
        den = a - 2 * b + c
        if den > 1e-12:
            return tau + 0.5 * (a - c) / den
    return float(tau)


class DSPVoice:
    name = "dsp"
    stateful = True
    provider = "CPU"

    def __init__(self) -> None:
        self.beta = 1.0  # pitch factor
        self.alpha = 1.0  # formant (envelope) factor
        self.configure(48000)

    # ---- protocol ---------------------------------------------------------------------------
    def configure(self, device_rate: int) -> int:
        self.sr = int(device_rate)
        self.hmax = max(8, round(HALF_MAX * self.sr))
        self.delay = 2 * self.hmax
        self.unvoiced_hop = max(4, round(UNVOICED_HOP * self.sr))
        self.decim = max(1, round(self.sr / PITCH_RATE))
        self.hist_len = max(round(0.12 * self.sr), 4 * self.hmax + round(PITCH_WINDOW * self.sr))
        # most samples taken in at once: the history must still hold, behind them, the pitch
        # tracker's window and the grains being placed (4 half-widths)
        self.chunk = self.hist_len - 4 * self.hmax - round(PITCH_WINDOW * self.sr)
        self.reset()
        return self.sr

    def update(self, params: dict) -> None:
        self.beta = float(2.0 ** (float(params.get("pitch", 0.0)) / 12.0))
        self.alpha = float(2.0 ** (float(params.get("formant", 0.0)) / 12.0))

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        pass  # the built-in voice needs no reference

    def lookahead(self) -> float:
        return self.delay / self.sr

    def reset(self) -> None:
        self.hist = np.zeros(self.hist_len, dtype=np.float64)
        self.n_in = 0  # absolute count of input samples; hist[-1] is sample n_in - 1
        self.acc = np.zeros(self.hist_len, dtype=np.float64)
        self.wsum = np.zeros(self.hist_len, dtype=np.float64)
        self.acc_base = -self.delay  # absolute output time of acc[0]
        self.marks: deque[tuple[int, float, bool]] = deque()  # (time, period, voiced)
        self.next_amark: int | None = None
        self.next_smark: float | None = None
        self.period = float(self.unvoiced_hop)
        self.voiced = False

    def close(self) -> None:
        pass

    # ---- processing -------------------------------------------------------------------------
    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        x = np.asarray(window[-info.block :], dtype=np.float64)
        if len(x) <= self.chunk:
            return self._convert(x)
        # a block longer than the history can take (the fallback beside a neural voice, a
        # large block size) goes through in pieces, as a stream of shorter blocks
        out = np.empty(len(x), dtype=np.float64)
        for i in range(0, len(x), self.chunk):
            out[i : i + self.chunk] = self._convert(x[i : i + self.chunk])
        return out

    def _convert(self, x: np.ndarray) -> np.ndarray:
        b = len(x)
        h = self.hist
        h[:-b] = h[b:]
        h[-b:] = x
        self.n_in += b
        self._track_pitch()
        self._place_analysis_marks()
        self._place_grains()
        return self._emit(b)

    def _hist_index(self, t: float) -> float:
        return t - (self.n_in - self.hist_len)

    def _track_pitch(self) -> None:
        n = round(PITCH_WINDOW * self.sr)
        seg = self.hist[-n:]
        if self.decim > 1:
            m = len(seg) // self.decim * self.decim
            seg = seg[len(seg) - m :].reshape(-1, self.decim).mean(axis=1)
        period = yin_period(seg, self.sr // self.decim if self.decim > 1 else self.sr)
        if period is None:
            self.voiced, self.period = False, float(self.unvoiced_hop)
        else:
            self.voiced, self.period = True, period * self.decim

    def _place_analysis_marks(self) -> None:
        if self.next_amark is None:
            self.next_amark = self.n_in - self.hmax - self.delay
        while self.next_amark + self.hmax <= self.n_in:
            self.marks.append((self.next_amark, self.period, self.voiced))
            self.next_amark += max(1, round(self.period))
        # marks far behind the synthesis point are no longer needed
        while (
            len(self.marks) > 2
            and self.next_smark is not None
            and self.marks[1][0] <= self.next_smark
        ):
            self.marks.popleft()

    def _place_grains(self) -> None:
        if not self.marks:
            return
        if self.next_smark is None:
            self.next_smark = float(self.marks[0][0])
        while True:
            mark = self._mark_at(self.next_smark)
            if mark is None:
                return
            t_a, period, voiced = mark
            # grains are laid even at pitch 0 / formant 0 (where the input is emitted as it is),
            # so moving a slider away from 0 continues seamlessly
            self._add_grain(self.next_smark, t_a, period, voiced)
            step = period / self.beta if voiced else period
            self.next_smark += max(1.0, step)

    def _mark_at(self, t: float):
        """The latest analysis mark at or before ``t``, if no later mark could still appear."""
        last = self.marks[-1]
        if t >= last[0] + max(1, round(last[1])):
            return None
        best = None
        for m in self.marks:
            if m[0] <= t:
                best = m
            else:
                break
        return best or self.marks[0]

    def _add_grain(self, t_s: float, t_a: int, period: float, voiced: bool) -> None:
        half = min(period if voiced else float(self.unvoiced_hop), float(self.hmax))
        if self.alpha > 1.0:
            half = half / self.alpha  # the source span alpha*half must stay within the lookahead
        half = max(2, int(half))
        tau = np.arange(-half, half, dtype=np.float64)
        src = self._hist_index(t_a) + self.alpha * tau
        grain = np.interp(src, np.arange(self.hist_len, dtype=np.float64), self.hist)
        win = 0.5 + 0.5 * np.cos(np.pi * tau / half)
        start = int(round(t_s)) - half - self.acc_base
        end = start + 2 * half
        if start < 0 or end > len(self.acc):
            return  # cannot happen with the lookahead honoured; never write out of bounds
        self.acc[start:end] += grain * win
        self.wsum[start:end] += win

    def _emit(self, b: int) -> np.ndarray:
        identity = abs(self.beta - 1.0) < 1e-6 and abs(self.alpha - 1.0) < 1e-6
        out_end = self.n_in - self.delay  # absolute time just after the last sample we emit
        if identity:
            i = self.hist_len - self.delay
            out = self.hist[i - b : i].copy()
        else:
            s = out_end - b - self.acc_base
            out = self.acc[s : s + b] / np.maximum(self.wsum[s : s + b], 1.0)
        # drop what has been emitted from the accumulators
        shift = out_end - self.acc_base
        if shift > 0:
            self.acc[:-shift] = self.acc[shift:]
            self.acc[-shift:] = 0.0
            self.wsum[:-shift] = self.wsum[shift:]
            self.wsum[-shift:] = 0.0
            self.acc_base += shift
        return out.astype(np.float32)
