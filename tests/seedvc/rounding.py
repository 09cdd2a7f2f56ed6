"""What float32 rounding can do to the signal front ends: per-element tolerances, derived.

The kit's expected arrays were computed in float32 (torch on some CPU); the product computes the
log-energy front ends in float64 (voicegui/voices/seedvc/features.py), so a comparison sees the
kit's own float32 error plus ours (negligible for mel and fbank: float64, then one rounding to
float32). The bounds below are first-order rounding-error bounds of each stage; every constant
comes from the stage's arithmetic, none from a measured difference. They scale with the data:
an element's tolerance is eps times its condition number (how much the stage amplifies a
rounding error into that element), so well-conditioned elements stay tight and a mistake that
moves them (window, table, framing) fails while the log of a near-silent band may move more.

u = 2**-24 is the float32 unit roundoff (half an ulp of 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from voicegui.voices.seedvc import features as feat

U = 2.0**-24


def fft_bound(n: int) -> float:
    """Normwise error of a float32 FFT of length n: ||dX||_2 <= c * u * ||X||_2.

    Higham, Accuracy and Stability of Numerical Algorithms (2nd ed.), Thm 24.2, radix 2:
    c = log2(n) * eta with eta = mu + gamma_4 * (sqrt(2) + mu) and twiddle error mu <= u, i.e.
    eta <= u + 4.0001 u * 1.4143 = 6.66 u per butterfly level. For n a power of two the
    radix-4/8 and real-input variants that FFT libraries use have fewer levels with butterflies
    of comparable error, so the same c bounds them.
    """
    return math.log2(n) * 6.66


def assert_within(actual, expected, tol, name: str = "") -> None:
    """|actual - expected| <= tol element-wise; the message names the worst element."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), expected.shape)
    err = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)
    i = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert ratio[i] <= 1.0, (
        f"{name}: |diff| {err[i]:.3g} > tolerance {tol[i]:.3g} at {tuple(int(j) for j in i)} "
        f"({int(np.sum(ratio > 1))} of {ratio.size} elements out)"
    )


def _log_tol(rel: np.ndarray) -> np.ndarray:
    # |log(E(1+r)) - log E| <= -log(1-r) for |r| <= rel < 1; no bound once rel >= 1/2
    rel = np.asarray(rel, dtype=np.float64)
    return np.where(rel < 0.5, -np.log1p(-np.minimum(rel, 0.5)), np.inf)


# ---------------------------------------------------------------------------- resampler


def resample_tolerance(wav22: np.ndarray) -> np.ndarray:
    """Per output sample, |ours - kit| of two float32 runs of the same polyphase sinc filter.

    Both sides build the taps with the same float32 formula; the only operations that may round
    differently between CPUs are the vectorised sin and cos (<= 1 ulp each, i.e. <= 2u relative
    on either side): a tap sinc(t) * cos^2(..) * scale then differs by at most
    2 * (2u + 2 * 2u) = 12u * |h|. The dot product of n = 459 taps rounds, on each side, by at
    most gamma_n <= n u times sum|h_j x_j| (Higham Thm 3.1, any summation order). So
    |dy_i| <= (12 + 2 * 459) u * sum_j |h_j| |x_j|, computed here in float64 (the kernel's
    length is read from the implementation, so another width or ratio keeps the rule).
    """
    x = torch.from_numpy(np.abs(np.ascontiguousarray(wav22, dtype=np.float64)))
    kernel, _ = feat._resample_kernel(torch.device("cpu"), torch.float64)
    n_taps = kernel.shape[-1]
    n = x.shape[-1]
    width = (n_taps - feat.RS_ORIG) // 2
    xp = torch.nn.functional.pad(x[None], (width, width + feat.RS_ORIG))
    y = torch.nn.functional.conv1d(xp[:, None], kernel.abs(), stride=feat.RS_ORIG)
    y = y.transpose(1, 2).reshape(-1)[: math.ceil(feat.RS_NEW * n / feat.RS_ORIG)]
    # below the normal range a float32 rounding errs by up to half the smallest subnormal
    # (2**-150) whatever the operand, once per operation on each side
    return (12 + 2 * n_taps) * U * y.numpy() + 2 * n_taps * 2.0**-150


# ---------------------------------------------------------------------------- Kaldi fbank

# Rounding of the samples before the FFT, relative to the frame: DC removal (u), pre-emphasis
# (0.97 * prev and the difference: 2u, on up to 1.97x the DC-removed sample), the float32 Povey
# window (hann's 0.5 - 0.5 cos has absolute error <= 1.5u; ^0.85 scales it by at most
# 0.85 * w^-0.15 <= 4.3 at the smallest w, ~6.5u) and its product (u):
# ||dx||_2 <= (1 + 0.97 + 1 + 1.97 * (6.5 + 1)) u ||x||_2 < 18 u ||x||_2; the mean's own error
# enters only as 0.03 * dmean after pre-emphasis: 19 u in all.
FBANK_PRE_FFT = 19.0
# Kaldi's float32 mel table: a vectorised float32 log may be 1 ulp off (2u relative of
# log(1 + f/700) <= 2.52); times 1127 that moves a mel value by <= 2.7e-4, its float32 rounding
# (ulp(2840) = 2.4e-4) by as much again, and a weight (mel - left) / 35.06 by
# <= 5.1e-4 / 35.06 + ulp = 1.5e-5 = 250 u (absolute, any weight).
FBANK_TABLE = 250.0
# The filterbank product sums 257 non-negative terms: gamma_257 <= 257 u relative; |X|^2 as
# re^2 + im^2 or abs()^2: 3 u relative.
FBANK_SUMS = 257.0 + 3.0


def _fbank_parts(wav16: np.ndarray):
    x = torch.from_numpy(np.ascontiguousarray(wav16, dtype=np.float64))
    frames = x.unfold(0, feat.FBANK_WIN, feat.FBANK_SHIFT)
    d = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([d[:, :1], d[:, :-1]], dim=1)
    p = (d - feat.PREEMPH * prev) * feat.povey_window(torch.float64)
    power = torch.fft.rfft(p, n=feat.FBANK_NFFT).abs().pow(2).numpy()
    banks = torch.nn.functional.pad(feat.fbank_mel_banks(), (0, 1)).double().t().numpy()
    # Parseval over the 512 bins of the raw frame; the FFT input p has ||p|| <= 1.97 ||x||
    q = feat.FBANK_NFFT * (frames.numpy() ** 2).sum(axis=1)
    return power, banks, q


def fbank_tolerance(wav16: np.ndarray, input_error: np.ndarray | None = None) -> np.ndarray:
    """(T, 80) bound on |fbank_ours - fbank_kit| for the raw log-mel fbank of ``wav16``.

    The spectrum of one frame is off by ||dX||_2 <= c u sqrt(Q), Q = 512 ||x_frame||^2 and
    c = 19 + 1.97 * fft_bound(512) = 137: the error is absolute, set by the whole frame. A band
    E = sum_k w_k |X_k|^2 (Kaldi weights w <= 1) then moves by
    sum_k w_k (2 |X_k| |dX_k| + |dX_k|^2) <= 2 sqrt(E) ||dX|| + ||dX||^2 (Cauchy-Schwarz), i.e.
    relatively by 2 c u sqrt(Q/E) + (c u)^2 Q/E: the condition number sqrt(Q/E) is large where a
    band holds a tiny share of its frame (the pre-emphasised low bins, near-silent frames). The
    table adds 250 u * sum_{k in band} |X_k|^2 / E, the sums 260 u. The log turns a relative
    error r into <= -log(1 - r); the float32 log (kit) and our final rounding to float32 add
    3 u |log E| (one ulp is <= 2u relative). E below Kaldi's floor (float32 eps) is clamped on
    both sides, so the floored value stands in for E.

    ``input_error``: a bound per input sample when the two sides start from different waveforms
    (our resampler's output against the kit's); it reaches the spectrum as
    sqrt(512) * 1.97 * ||input_error over the frame||_2 (Parseval, pre-emphasis gain <= 1.97).
    """
    power, banks, q = _fbank_parts(wav16)
    eps = float(np.finfo(np.float32).eps)
    energy = np.maximum(power @ banks, eps)
    dx = (FBANK_PRE_FFT + 1.97 * fft_bound(feat.FBANK_NFFT)) * U * np.sqrt(q)[:, None]
    if input_error is not None:
        e = torch.from_numpy(np.ascontiguousarray(input_error, dtype=np.float64))
        e2 = (e.unfold(0, feat.FBANK_WIN, feat.FBANK_SHIFT).numpy() ** 2).sum(axis=1)
        dx = dx + math.sqrt(feat.FBANK_NFFT) * 1.97 * np.sqrt(e2)[:, None]
    in_band = power @ (banks > 0)
    rel = 2 * dx / np.sqrt(energy) + dx**2 / energy + FBANK_SUMS * U
    rel = rel + FBANK_TABLE * U * in_band / energy
    return _log_tol(rel) + 3 * U * np.abs(np.log(energy))


def fbank_normalised_tolerance(
    wav16: np.ndarray, input_error: np.ndarray | None = None
) -> np.ndarray:
    """(T, 80) bound after the per-bin mean over time is subtracted.

    The mean of the per-element errors is at most the mean of their bounds; the kit's float32
    mean over T rows rounds by <= gamma_T * mean|fbank| (T u, any summation order) and the
    subtraction by u |result| <= u * 2 max|fbank|.
    """
    tol = fbank_tolerance(wav16, input_error)
    power, banks, _ = _fbank_parts(wav16)
    logs = np.abs(np.log(np.maximum(power @ banks, float(np.finfo(np.float32).eps))))
    t = logs.shape[0]
    return tol + tol.mean(axis=0) + U * (t * logs.mean(axis=0) + 2 * logs.max(axis=0))


# ---------------------------------------------------------------------------- mel


def mel_tolerance(wav22: np.ndarray) -> np.ndarray:
    """(1, 80, T) bound on |mel_ours - mel_kit| for the log-mel of ``wav22`` (N,).

    The frame (1024 samples of the reflect-padded signal) times the float32 periodic Hann
    window (absolute error <= 1.5 u) and the product round by <= 2.5 u |x_n|; the STFT adds
    fft_bound(1024) u ||X||: ||dX||_2 <= (2.5 + 66.6) u sqrt(Q), Q = 1024 ||x_frame||^2.
    sqrt(|X|^2 + 1e-9) is 1-Lipschitz in |X|, so a mel band m = sum_k w_k mag_k moves by
    <= ||w||_2 ||dX||_2, relatively ||w||_2 ||dX|| / max(m, 1e-5) (below the clamp both sides
    agree); the magnitudes and the 513-term product add (3 + 513) u, the log 3 u |log m|.
    """
    x = torch.from_numpy(np.ascontiguousarray(wav22, dtype=np.float64))[None, None]
    pad = (feat.N_FFT - feat.HOP) // 2
    x = torch.nn.functional.pad(x, (pad, pad), mode="reflect")[0, 0]
    frames = x.unfold(0, feat.N_FFT, feat.HOP)
    window = torch.hann_window(feat.WIN, periodic=True, dtype=torch.float64)
    mag = torch.sqrt(torch.fft.rfft(frames * window).abs().pow(2) + 1e-9).numpy()
    basis = feat.slaney_mel_filterbank().astype(np.float64)
    mel = np.maximum(mag @ basis.T, 1e-5)
    q = feat.N_FFT * (frames.numpy() ** 2).sum(axis=1)
    dx = (2.5 + fft_bound(feat.N_FFT)) * U * np.sqrt(q)[:, None]
    rel = dx * np.linalg.norm(basis, axis=1)[None] / mel + (3 + 513) * U
    tol = _log_tol(rel) + 3 * U * np.abs(np.log(mel))
    return tol.T[None]
