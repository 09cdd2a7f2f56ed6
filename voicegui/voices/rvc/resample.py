"""Band-limited resampling to the content encoder's 16 kHz, as RVC's real-time GUI does it.

A Hann-windowed sinc polyphase filter (lowpass width 6 zero crossings, cut-off at 0.99 of the
lower Nyquist) over the ratio reduced by the gcd: the filter torchaudio's ``Resample`` applies by
default. Upstream builds that kernel in float32 (``dtype=float32``), so the taps are computed
in float32 here too: the same formula in another precision would round the taps differently.
The kernel is built once per (rates, device, dtype) and cached; each call is one strided conv.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

LOWPASS_WIDTH = 6  # zero crossings of the sinc on each side of a tap
ROLLOFF = 0.99  # cut-off as a fraction of the lower of the two Nyquist frequencies


def reduced_ratio(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """(orig, new) divided by their gcd: one conv step reads ``orig`` and writes ``new``."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    g = math.gcd(int(orig_sr), int(new_sr))
    return int(orig_sr) // g, int(new_sr) // g


def resampled_length(n: int, orig_sr: int, new_sr: int) -> int:
    """ceil(n * new / orig) samples, the length the filter keeps."""
    orig, new = reduced_ratio(orig_sr, new_sr)
    return -(-n * new // orig)


@lru_cache(maxsize=16)
def sinc_kernel(
    orig_sr: int,
    new_sr: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    lowpass_width: int = LOWPASS_WIDTH,
    rolloff: float = ROLLOFF,
) -> tuple[Tensor, int]:
    """(new, 1, 2*width + orig) polyphase kernel, one row per output phase, and ``width``.

    Tap j of row p sits at t = (j - width)/orig - p/new input periods of the reduced ratio,
    scaled to the cut-off; its weight is sinc(t) times a Hann window cos^2(pi t / (2 w)) that
    reaches zero at |t| = w zero crossings, times cut-off/orig so the passband gain is 1.
    """
    device = torch.device("cpu") if device is None else device
    orig, new = reduced_ratio(orig_sr, new_sr)
    cutoff = min(orig, new) * rolloff
    width = math.ceil(lowpass_width * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    phases = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new
    t = (phases + taps) * cutoff
    t = t.clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2
    t = t * math.pi
    one = torch.ones((), dtype=dtype, device=device)
    sinc = torch.where(t == 0, one, t.sin() / t)
    return sinc * (window * (cutoff / orig)), width


def resample(wav: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """(..., N) at ``orig_sr`` -> (..., ceil(N * new_sr / orig_sr)) at ``new_sr``.

    Zeros are assumed before and after the signal (no reflection), as upstream does.
    """
    if orig_sr == new_sr:
        return wav
    orig, new = reduced_ratio(orig_sr, new_sr)
    shape = wav.shape
    x = wav.reshape(-1, shape[-1])
    kernel, width = sinc_kernel(orig_sr, new_sr, x.device, x.dtype)
    n = x.shape[-1]
    x = F.pad(x, (width, width + orig))
    # every step of `orig` input samples yields `new` outputs, one per kernel row
    y = F.conv1d(x[:, None], kernel, stride=orig)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)
    out = resampled_length(n, orig_sr, new_sr)
    return y[:, :out].reshape(*shape[:-1], out)


def to_16k(wav: Tensor, sr: int) -> Tensor:
    """The content encoder's and f0 models' rate."""
    return resample(wav, sr, 16000)
