"""What float32 rounding can do to the RVC front ends: tolerances, derived.

The kit's arrays were computed by upstream in float32 on some CPU; ours are computed in float32
too, with the same operations but possibly other summation orders (another CPU, another BLAS
blocking, another FFT). Nothing here is a measured difference: every figure comes from the
arithmetic of the stage, in the two styles of the Seed-VC tests:

- signal front ends (resampler, log-mel): per-element first-order rounding bounds
  (tests/seedvc/rounding.py explains the FFT and log terms);
- networks: ``rounding_rtol`` of tests/seedvc/conftest.py, i.e. 2 x sum over the layers of
  0.41 sqrt(fan-in) u, relative to the largest expected value (the kit's own rule,
  max|diff| <= rtol * max|expected|). The fan-ins are read off the models, so another size
  keeps the rule.

A sigmoid salience moves by at most 1/4 of its logit's error (the sigmoid's slope is <= 1/4),
and the f0 decoders turn a salience error into a cents error through their weighted means
(:func:`local_mean_cents_tolerance`).

u = 2**-24 is the float32 unit roundoff.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tests.seedvc.conftest import rounding_rtol
from tests.seedvc.rounding import U, _log_tol, fft_bound
from voicegui.voices.rvc import resample as rs

SIGMOID_SLOPE = 0.25  # max of sigmoid'(x)


# ---------------------------------------------------------------------------- resampler


def resample_tolerance(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Per output sample, |ours - kit| of two float32 runs of the same polyphase sinc filter.

    Both sides build the taps with the same float32 formula; only the vectorised sin and cos
    may round differently between CPUs (<= 1 ulp each, <= 2u relative): a tap
    sinc(t) * cos^2(..) * scale then differs by <= 2 * (2u + 2 * 2u) = 12u |h|. The dot product
    of n taps rounds on each side by <= n u sum|h_j x_j| (Higham Thm 3.1, any order), so
    |dy_i| <= (12 + 2n) u sum_j |h_j| |x_j|, computed here in float64 with the kernel's own
    length (another ratio keeps the rule); a subnormal result adds 2**-150 per operation.
    """
    kernel, width = rs.sinc_kernel(orig_sr, new_sr, torch.device("cpu"), torch.float64)
    orig, _ = rs.reduced_ratio(orig_sr, new_sr)
    n_taps = kernel.shape[-1]
    xa = torch.from_numpy(np.abs(np.asarray(x, dtype=np.float64)))
    xp = torch.nn.functional.pad(xa[None], (width, width + orig))
    y = torch.nn.functional.conv1d(xp[:, None], kernel.abs(), stride=orig)
    y = y.transpose(1, 2).reshape(-1)[: rs.resampled_length(len(x), orig_sr, new_sr)]
    return (12 + 2 * n_taps) * U * y.numpy() + 2 * n_taps * 2.0**-150


# ---------------------------------------------------------------------------- log-mel


def log_mel_tolerance(
    frames: np.ndarray, window: np.ndarray, basis: np.ndarray, eps: float, clamp: float
) -> np.ndarray:
    """(bands, F) bound on |ours - kit| for the natural-log mel of STFT frames (F, n_fft).

    The frame times the float32 window (the window's own error <= 1.5u, the product's u) is off
    by <= 2.5u |x_n|; the FFT adds fft_bound(n) u ||X||: ||dX||_2 <= (2.5 + fft_bound) u sqrt(Q)
    with Q = n ||x_frame||^2 (Parseval). The magnitude sqrt(|X|^2 + eps) is 1-Lipschitz in
    |X|, so a band m = sum_k w_k mag_k moves by <= ||w||_2 ||dX||_2, relatively by that over
    max(m, clamp) (below the clamp both sides agree); the squares, the root and the n/2+1-term
    product add (3 + n/2 + 1) u relative; the float32 log 3u |log m|.
    """
    x = np.asarray(frames, dtype=np.float64)
    n = x.shape[1]
    spec = np.abs(np.fft.rfft(x * np.asarray(window, dtype=np.float64), axis=1))
    mag = np.sqrt(spec**2 + eps)
    basis = np.asarray(basis, dtype=np.float64)
    mel = np.maximum(mag @ basis.T, clamp)
    q = n * (x**2).sum(axis=1)
    dx = (2.5 + fft_bound(n)) * U * np.sqrt(q)[:, None]
    rel = dx * np.linalg.norm(basis, axis=1)[None] / mel + (3 + n // 2 + 1) * U
    return (_log_tol(rel) + 3 * U * np.abs(np.log(mel))).T


def frames_of(x: np.ndarray, n_fft: int, hop: int, left: int, right: int) -> np.ndarray:
    """(F, n_fft) frames of x reflect-padded by (left, right), framed without centring."""
    xp = np.pad(np.asarray(x, dtype=np.float64), (left, right), mode="reflect")
    return np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop]


# ---------------------------------------------------------------------------- networks


def fan_in_sum(model: nn.Module, time_steps: int = 0) -> float:
    """sum sqrt(fan-in) over a model's convolutions, linear layers and GRUs (every layer lies on
    some path to the output, so every layer's rounding reaches it; batch norm in eval mode is a
    per-element affine map, one rounding). A GRU adds its input and its hidden product per
    step; its gates interpolate between the old state and the new one, so an error made at one
    step is damped, not accumulated, by the next ones."""
    s = 0.0
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            s += math.sqrt(m.in_channels * math.prod(m.kernel_size) / math.prod(m.stride))
        elif isinstance(m, nn.Conv1d | nn.Conv2d):
            s += math.sqrt(m.in_channels // m.groups * math.prod(m.kernel_size))
        elif isinstance(m, nn.Linear):
            s += math.sqrt(m.in_features)
        elif isinstance(m, nn.GRU):
            s += math.sqrt(m.input_size) + math.sqrt(m.hidden_size)
        elif isinstance(m, nn.LayerNorm | nn.GroupNorm):
            # mean and variance: two sums over the normalised elements
            if isinstance(m, nn.LayerNorm):
                n = math.prod(m.normalized_shape)
            else:  # a group's channels over all time steps
                n = m.num_channels // m.num_groups * time_steps
            s += 2 * math.sqrt(max(n, 1))
    return s


def hubert_fan_in_sum(shape, samples: int, layers: int, projected: bool) -> float:
    """HuBERT up to the output of ``layers`` encoder layers (and final_proj if ``projected``).

    Conv stack: sqrt(c_in k) per layer, plus the first layer's group norm (mean and variance
    over its T0 output frames: 2 sqrt(T0)). Feature projection: layer norm 2 sqrt(512) and
    the linear sqrt(512). Positional conv: sqrt(hidden / groups * kernel); its layer norm
    2 sqrt(hidden). Each encoder layer: q/k/v sqrt(hidden), scores sqrt(head dim), the
    attention-weighted sum sqrt(T), the output projection sqrt(hidden), two layer norms
    2 x 2 sqrt(hidden), the feed-forward sqrt(hidden) + sqrt(ffn).
    """
    cins = (1, *shape.conv_dim[:-1])
    s = sum(math.sqrt(c * k) for c, k in zip(cins, shape.conv_kernel, strict=True))
    t0 = (samples - shape.conv_kernel[0]) // shape.conv_stride[0] + 1
    t = shape.frames(samples)
    h = shape.hidden
    s += 2 * math.sqrt(t0)
    s += 3 * math.sqrt(shape.conv_dim[-1])
    s += math.sqrt(h // shape.pos_groups * shape.pos_kernel) + 2 * math.sqrt(h)
    per_layer = 3 * math.sqrt(h) + math.sqrt(h // shape.heads) + math.sqrt(t)
    per_layer += 4 * math.sqrt(h) + math.sqrt(shape.ffn)
    s += layers * per_layer
    if projected:
        s += math.sqrt(h)
    return s


def conv_stack_fan_in_sum(shape, samples: int) -> float:
    cins = (1, *shape.conv_dim[:-1])
    t0 = (samples - shape.conv_kernel[0]) // shape.conv_stride[0] + 1
    s = sum(math.sqrt(c * k) for c, k in zip(cins, shape.conv_kernel, strict=True))
    return s + 2 * math.sqrt(t0)


def salience_tolerance(rtol: float, logits: np.ndarray) -> float:
    """Absolute bound on a sigmoid salience whose logits are off by rtol * max|logits|."""
    return SIGMOID_SLOPE * rtol * float(np.max(np.abs(logits)))


# ---------------------------------------------------------------------------- f0 decoders


def local_mean_cents_tolerance(
    weights: np.ndarray, cents: np.ndarray, mean: np.ndarray, dw: float
) -> np.ndarray:
    """Per frame, how far c = sum w_i c_i / sum w_i moves when every weight moves by <= dw.

    dc/dw_i = (c_i - c) / sum w, so |dc| <= dw sum_i |c_i - c| / (sum_i w_i - n dw) to first
    order, with the denominator's own shift (n weights) kept so a nearly empty window is not
    under-bounded. ``weights``/``cents`` are (F, n): the local window; ``mean`` is (F,).
    """
    w = np.asarray(weights, dtype=np.float64)
    spread = np.abs(np.asarray(cents, dtype=np.float64) - np.asarray(mean)[:, None]).sum(axis=1)
    denom = np.maximum(w.sum(axis=1) - w.shape[1] * dw, 1e-30)
    return dw * spread / denom


def hz_tolerance_from_cents(
    f0: np.ndarray, cents_tol: np.ndarray, cents: np.ndarray | float = 0.0
) -> np.ndarray:
    """f = 10 * 2**(c / 1200): |df| <= f (2**(dc/1200) - 1), plus, when the conversion runs in
    float32 (pass ``cents``), the rounding of c / 1200 (u |c| / 1200 in the exponent, i.e.
    ln2 u |c| / 1200 relative), of the pow (2u) and of the product (u)."""
    f0 = np.abs(np.asarray(f0, dtype=np.float64))
    exponent = math.log(2) * U * np.abs(np.asarray(cents, dtype=np.float64)) / 1200
    with np.errstate(over="ignore"):  # a hopeless frame's bound may overflow to inf: fine
        grow = np.exp2(np.asarray(cents_tol, dtype=np.float64) / 1200) - 1
    return f0 * grow + (3 * U + exponent) * f0


__all__ = [
    "U",
    "conv_stack_fan_in_sum",
    "fan_in_sum",
    "frames_of",
    "hubert_fan_in_sum",
    "hz_tolerance_from_cents",
    "local_mean_cents_tolerance",
    "log_mel_tolerance",
    "resample_tolerance",
    "rounding_rtol",
    "salience_tolerance",
]
