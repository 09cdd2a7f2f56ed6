"""Signal front ends of the Seed-VC real-time model: mel, 22.05->16 kHz resampler, Kaldi fbank.

All three are plain tensor code with their constant tables (filterbanks, windows, the polyphase
kernel) built once per (device, dtype) and cached, so a real-time block pays only for the
transforms themselves.

The two log-energy front ends (mel, fbank) run once per reference, so they compute in float64
where the device has it and return the input's dtype. In float32 the log amplifies rounding: a
band whose energy is 1e-9 of its frame's (the pre-emphasised low bins, silence) carries the
FFT's absolute rounding error (~eps * the frame's norm) as a relative error of ~1e-3 in its
energy, i.e. 1e-3 in its log, and that last bit differed between CPUs. In float64 the same
amplification leaves ~1e-12. The filter tables keep the reference's float32 numbers (Kaldi and
librosa store them in float32), built from correctly rounded operations so they are the same on
every CPU. The resampler stays float32: it is linear, has no such amplification, and also runs
on every real-time block.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Mel front end of the DiT / vocoder (22.05 kHz).
SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN = 0.0
FMAX = 8000.0

# Speaker-encoder front end (16 kHz Kaldi fbank).
FBANK_RATE = 16000
FBANK_WIN = 400  # 25 ms
FBANK_SHIFT = 160  # 10 ms
FBANK_NFFT = 512  # next power of two above the window
FBANK_BINS = 80
FBANK_LOW_HZ = 20.0
PREEMPH = 0.97

# torchaudio's default sinc resampler, 22050 -> 16000 reduced by their gcd (50).
RS_ORIG = 441
RS_NEW = 320
RS_WIDTH = 6
RS_ROLLOFF = 0.99


# --------------------------------------------------------------------------- mel spectrogram


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mel = f / f_sp
    high = f >= min_log_hz
    mel = np.where(high, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mel)
    return mel


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    hz = f_sp * m
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), hz)


def slaney_mel_filterbank(
    sr: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
    fmax: float = FMAX,
) -> np.ndarray:
    """(n_mels, n_fft//2+1) float32 triangular filters on the Slaney scale with area norm.

    Same numbers as librosa.filters.mel(htk=False, norm='slaney'); written out here so that
    librosa is not a dependency.
    """
    fft_freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sr / n_fft)
    mel_pts = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    # librosa stores the triangles in float32 before the norm; round the same way.
    tri = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    enorm = 2.0 / (hz_pts[2:] - hz_pts[:-2])
    return (tri.astype(np.float64) * enorm[:, None]).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_tables(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # the filterbank keeps librosa's float32 values; the window is computed in ``dtype``
    basis = torch.from_numpy(slaney_mel_filterbank()).to(device=device, dtype=dtype)
    window = torch.hann_window(WIN, periodic=True, dtype=torch.float64).to(device, dtype)
    return basis, window


def _wide(t: Tensor) -> torch.dtype:
    """float64 for the once-per-reference front ends, except where the device lacks it (MPS)."""
    return torch.float32 if t.device.type == "mps" else torch.float64


def mel_spectrogram(wav: Tensor) -> Tensor:
    """Log-mel of a 22.05 kHz waveform (B, N) or (N,) -> (B, 80, T), T = (N+768-1024)//256 + 1.

    Computed in float64 (see the module note), returned in the input's dtype."""
    if wav.dim() == 1:
        wav = wav[None]
    out_dtype = wav.dtype
    wav = wav.to(_wide(wav))
    basis, window = _mel_tables(wav.device, wav.dtype)
    pad = (N_FFT - HOP) // 2
    # Reflect-pad by (n_fft-hop)/2 and then frame without centring: frames start at sample 0.
    x = F.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        x,
        N_FFT,
        hop_length=HOP,
        win_length=WIN,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    spec = torch.view_as_real(spec)
    mag = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)  # the epsilon sits inside the root
    return torch.log(torch.clamp(torch.matmul(basis, mag), min=1e-5)).to(out_dtype)


# --------------------------------------------------------------------------- resampler


@lru_cache(maxsize=8)
def _resample_kernel(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, int]:
    """Polyphase Hann-windowed sinc kernel: one row per output phase, (320, 1, 459)."""
    base = min(RS_ORIG, RS_NEW) * RS_ROLLOFF  # cut-off just under the output Nyquist
    width = math.ceil(RS_WIDTH * RS_ORIG / base)  # input samples reached on each side
    # Time (in input samples, scaled to the cut-off) from each output phase to each tap;
    # built in the signal's dtype like the reference so the taps round identically.
    taps = torch.arange(-width, width + RS_ORIG, dtype=dtype, device=device)[None, None] / RS_ORIG
    phases = torch.arange(0, -RS_NEW, -1, dtype=dtype, device=device)[:, None, None] / RS_NEW
    t = (phases + taps) * base
    t = t.clamp(-RS_WIDTH, RS_WIDTH)
    window = torch.cos(t * math.pi / RS_WIDTH / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype, device=device), t.sin() / t)
    return sinc * (window * (base / RS_ORIG)), width


def resample_22k_to_16k(wav: Tensor) -> Tensor:
    """22050 -> 16000 Hz, same numbers as torchaudio.functional.resample's defaults.

    (N,) -> (M,) or (..., N) -> (..., M) with M = ceil(N * 320 / 441).
    """
    shape = wav.shape
    x = wav.reshape(-1, shape[-1])
    n = x.shape[-1]
    kernel, width = _resample_kernel(x.device, x.dtype)
    x = F.pad(x, (width, width + RS_ORIG))
    # Every hop of 441 input samples yields 320 output samples, one per kernel row.
    y = F.conv1d(x[:, None], kernel, stride=RS_ORIG)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)
    out_len = math.ceil(RS_NEW * n / RS_ORIG)
    return y[:, :out_len].reshape(*shape[:-1], out_len)


# --------------------------------------------------------------------------- Kaldi fbank


def _kaldi_mel(f: Tensor) -> Tensor:
    # float32 like Kaldi's tables, but the log correctly rounded (through float64): a vectorised
    # float32 log may differ by an ulp between CPUs, and one ulp of log(1 + f/700) <= 2.52 moves
    # a filter weight by up to ~80 eps (1127 * eps * 2.52 / 35.1 mel per filter half-width).
    return 1127.0 * (1.0 + f / 700.0).double().log().to(f.dtype)


def fbank_mel_banks() -> Tensor:
    """(80, 256) float32 Kaldi mel triangles over the FFT bins below Nyquist, the reference's
    float32 arithmetic step by step (every step correctly rounded, so every CPU agrees)."""
    dtype = torch.float32
    high_hz = FBANK_RATE / 2
    mel_lo = 1127.0 * math.log(1.0 + FBANK_LOW_HZ / 700.0)
    mel_hi = 1127.0 * math.log(1.0 + high_hz / 700.0)
    delta = (mel_hi - mel_lo) / (FBANK_BINS + 1)
    b = torch.arange(FBANK_BINS, dtype=dtype)[:, None]
    left = mel_lo + b * delta
    centre = mel_lo + (b + 1.0) * delta
    right = mel_lo + (b + 2.0) * delta
    n_bins = FBANK_NFFT // 2
    bin_hz = FBANK_RATE / FBANK_NFFT
    mel = _kaldi_mel(bin_hz * torch.arange(n_bins, dtype=dtype))[None]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def povey_window(dtype: torch.dtype = torch.float64) -> Tensor:
    """Kaldi's Povey window: a symmetric Hann window to the power 0.85, (400,)."""
    return torch.hann_window(FBANK_WIN, periodic=False, dtype=torch.float64).pow(0.85).to(dtype)


@lru_cache(maxsize=8)
def _fbank_tables(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Povey window (400,) and the (257, 80) Kaldi mel matrix (triangles in the mel domain)."""
    window = povey_window(dtype).to(device)
    # Kaldi leaves the Nyquist bin out of every filter.
    banks = F.pad(fbank_mel_banks(), (0, 1)).to(device=device, dtype=dtype)
    return window, banks.t().contiguous()


def kaldi_fbank(wav16k: Tensor) -> Tensor:
    """Kaldi fbank (80 bins, dither 0, snip_edges) of a 16 kHz waveform in [-1, 1] -> (T, 80).

    Computed in float64 (see the module note), returned in the input's dtype."""
    out_dtype = wav16k.dtype
    x = wav16k.reshape(-1)
    if x.numel() < FBANK_WIN:
        raise ValueError(f"need at least {FBANK_WIN} samples for one fbank frame, got {x.numel()}")
    x = x.to(_wide(x))
    window, banks = _fbank_tables(x.device, x.dtype)
    frames = x.unfold(0, FBANK_WIN, FBANK_SHIFT)  # (T, 400) view, snip_edges framing
    frames = frames - frames.mean(dim=1, keepdim=True)  # per-frame DC removal
    # Pre-emphasis with the first sample repeated as its own predecessor.
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - PREEMPH * prev) * window
    spec = torch.view_as_real(torch.fft.rfft(frames, n=FBANK_NFFT))
    power = spec.pow(2).sum(-1)  # re^2 + im^2, no square root to undo
    energies = torch.mm(power, banks)
    eps = torch.finfo(torch.float32).eps  # Kaldi's floor is float32 eps whatever the dtype
    return torch.clamp(energies, min=eps).log().to(out_dtype)


def mean_normalise(fbank: Tensor) -> Tensor:
    """Subtract the per-bin mean over time (no variance normalisation): (T, 80) -> (T, 80)."""
    wide = fbank.to(_wide(fbank))
    return (wide - wide.mean(dim=0, keepdim=True)).to(fbank.dtype)
