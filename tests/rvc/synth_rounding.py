"""Tolerances of the synthesizer stages, derived from the network the checkpoint builds.

Acceptance rule (the kit's): max|ours - kit| <= rtol * max|kit|.

Both sides compute in float32 with the same operations in the same order at the element level;
what differs between CPUs, and between our code and upstream's, is the order of the sums inside
matmuls and convolutions (blocking, vector width, FMA). A dot product of n terms whose partial
sums wander like a random walk (s_k ~ sqrt(k) m, each rounded by an error of standard deviation
u |s_k| / sqrt(3)) errs by sqrt(sum_k k / 3) u m = n u m / sqrt(6) against a value of size
~ sqrt(n) m: 0.41 sqrt(n) u relative. Layers pass a relative error on (layer norms rescale,
activations are 1-Lipschitz, the weight-normed convs have gains near 1), so they add: a stage
whose layers have fan-ins n_l expects sum_l 0.41 sqrt(n_l) u; the largest element (~4.5 sigma
over 1e4-1e5 elements) measured against max|expected| (~4 rms) stays near that figure, and the
rtol is twice it (upstream's rounding and ours). The worst-case bound (n u per sum) would be
~sqrt(n) = 30x looser and hide real mistakes; test_negative_controls.py shows these catch them.

The sine source is not a sum of this kind: both sides form its phase with the same float32
element operations and the same float64 running sum (torch's CPU cumsum of float32), so it
agrees to the last bit or two of sin(); it contributes nothing at this scale.

Fan-ins are read from the built model (its convolutions, linears and attention sizes), so a
model of another rate or version gets its own figure.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from voicegui.voices.rvc.text_encoder import RelativeAttention

U = 2.0**-24  # float32 unit roundoff


def rounding_rtol(sum_sqrt_fan_in: float) -> float:
    """2 x sum_l 0.41 sqrt(n_l) u (see the module docstring)."""
    return 2 * 0.41 * sum_sqrt_fan_in * U


def layer_fan_in(module: nn.Module) -> int:
    """Terms summed per output element by one layer (0 for layers that sum nothing)."""
    if isinstance(module, nn.ConvTranspose1d):
        # each output sample gathers in * k / stride taps
        return module.in_channels * module.kernel_size[0] // module.stride[0]
    if isinstance(module, nn.Conv1d):
        return module.in_channels // module.groups * module.kernel_size[0]
    if isinstance(module, nn.Linear):
        return module.in_features
    return 0


def sum_sqrt_fan_in(module: nn.Module, frames: int = 0) -> float:
    """Sum of sqrt(fan-in) over every summing layer inside ``module``; attention layers add
    their two products: scores (head_dim terms, plus head_dim for the relative keys) and the
    weighted values (``frames`` keys, plus the 2w+1 relative values)."""
    total = 0.0
    for m in module.modules():
        n = layer_fan_in(m)
        if n:
            total += math.sqrt(n)
        if isinstance(m, RelativeAttention):
            total += 2 * math.sqrt(m.head_dim) + math.sqrt(frames) + math.sqrt(2 * m.window + 1)
    return total


def rtol_prior(model, frames: int) -> float:
    """m_p / logs_p: the prior encoder over ``frames`` frames."""
    return rounding_rtol(sum_sqrt_fan_in(model.enc_p, frames))


def rtol_z(model, frames: int) -> float:
    """z: the prior encoder, then the reverse flow (its errors add to the prior's)."""
    return rounding_rtol(sum_sqrt_fan_in(model.enc_p, frames) + sum_sqrt_fan_in(model.flow))


def rtol_audio(model, frames: int) -> float:
    """The waveform: prior encoder + flow + decoder (the speaker table is a lookup)."""
    return rounding_rtol(
        sum_sqrt_fan_in(model.enc_p, frames)
        + sum_sqrt_fan_in(model.flow)
        + sum_sqrt_fan_in(model.dec)
    )


def assert_rel(actual, expected, rtol: float, name: str = "") -> float:
    """max|diff| <= rtol * max|expected|; returns the ratio max|diff| / max|expected|."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{name}: NaN or inf"
    err = float(np.max(np.abs(actual - expected)))
    scale = float(np.max(np.abs(expected)))
    assert err <= rtol * scale, f"{name}: max|diff| {err:.3g} > {rtol:.3g} * {scale:.3g}"
    return err / scale
