"""Front ends (mel, 22.05->16 kHz resampler, Kaldi fbank) against the Seed-VC parity kit.

Tolerances are per element, from the rounding analysis in tests/seedvc/rounding.py; each has a
negative control below that applies a real mistake and asserts that the comparison fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.seedvc.rounding import (
    assert_within,
    fbank_normalised_tolerance,
    fbank_tolerance,
    mel_tolerance,
    resample_tolerance,
)
from voicegui.voices.seedvc import features as feat


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_ref_mel(kit_inputs, kit_expected):
    mel = feat.mel_spectrogram(_t(kit_inputs["ref_wav_22k"]))
    assert mel.dtype == torch.float32
    tol = mel_tolerance(kit_inputs["ref_wav_22k"])
    assert_within(mel.numpy(), kit_expected["ref_mel"], tol, "ref_mel")


def test_mel_accepts_batched_and_flat_input(kit_inputs):
    wav = _t(kit_inputs["ref_wav_22k"])
    flat = feat.mel_spectrogram(wav)
    batched = feat.mel_spectrogram(torch.stack([wav, wav]))
    assert flat.shape == (1, 80, (wav.numel() + 768 - 1024) // 256 + 1)
    assert batched.shape == (2, *flat.shape[1:])
    torch.testing.assert_close(batched[1:], flat, rtol=0, atol=1e-6)


def test_slaney_filterbank_shape_and_support():
    fb = feat.slaney_mel_filterbank()
    assert fb.shape == (80, 513) and fb.dtype == np.float32
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    # Nothing above fmax = 8 kHz (bin width 22050/1024 Hz).
    assert not fb[:, int(np.ceil(8000 / (22050 / 1024))) + 1 :].any()


def test_ref_wav_16k(kit_inputs, kit_expected):
    wav16 = feat.resample_22k_to_16k(_t(kit_inputs["ref_wav_22k"]))
    tol = resample_tolerance(kit_inputs["ref_wav_22k"])
    assert_within(wav16.numpy(), kit_expected["ref_wav_16k"], tol, "ref_wav_16k")


def test_resample_length_and_batch_shape():
    x = torch.randn(2, 1001)
    y = feat.resample_22k_to_16k(x)
    assert y.shape == (2, int(np.ceil(1001 * 320 / 441)))
    torch.testing.assert_close(feat.resample_22k_to_16k(x[1]), y[1], rtol=0, atol=1e-6)


def test_resample_keeps_a_low_tone():
    n = 22050
    t = torch.arange(n, dtype=torch.float64) / 22050
    y = feat.resample_22k_to_16k(torch.sin(2 * torch.pi * 440 * t).float())
    ref = torch.sin(2 * torch.pi * 440 * torch.arange(y.numel(), dtype=torch.float64) / 16000)
    # Away from the zero-padded edges the band-limited tone passes essentially unchanged.
    assert (y[200:-200].double() - ref[200:-200]).abs().max() < 2e-3


def test_ref_fbank_raw(kit_expected):
    fb = feat.kaldi_fbank(_t(kit_expected["ref_wav_16k"]))
    assert fb.dtype == torch.float32
    tol = fbank_tolerance(kit_expected["ref_wav_16k"])
    assert_within(fb.numpy(), kit_expected["ref_fbank_raw"], tol, "ref_fbank_raw")


def test_ref_fbank_mean_normalised(kit_expected):
    fb = feat.mean_normalise(feat.kaldi_fbank(_t(kit_expected["ref_wav_16k"])))
    tol = fbank_normalised_tolerance(kit_expected["ref_wav_16k"])
    assert_within(fb.numpy(), kit_expected["ref_fbank"], tol, "ref_fbank")


def test_fbank_chain_from_22k(kit_inputs, kit_expected):
    wav16 = feat.resample_22k_to_16k(_t(kit_inputs["ref_wav_22k"]))
    fb = feat.mean_normalise(feat.kaldi_fbank(wav16))
    # our resampled input may differ from the kit's by the resampler's bound
    tol = fbank_normalised_tolerance(
        kit_expected["ref_wav_16k"], resample_tolerance(kit_inputs["ref_wav_22k"])
    )
    assert_within(fb.numpy(), kit_expected["ref_fbank"], tol, "ref_fbank (from 22.05 kHz)")


def test_fbank_is_the_float64_result_rounded_once(kit_expected):
    """float32 in, float32 out, but computed in float64: the log of a band that holds 1e-9 of
    its frame keeps its digits (in float32 it would carry ~1e-3 of the FFT's rounding), so the
    result is the float64 one up to the final rounding, on any CPU."""
    wav = _t(kit_expected["ref_wav_16k"])
    wide = feat.kaldi_fbank(wav.double()).double()
    ours = feat.kaldi_fbank(wav).double()
    u = 2.0**-24
    # ours is the float64 result rounded once to float32: half an ulp of |log E| <= 16
    assert (ours - wide).abs().max() <= u * wide.abs().max()


# ---------------------------------------------------------------- another float32 machine
# What another CPU does to the kit's float32 computation, stood in for by another float32
# implementation: pocketfft in single precision (scipy) instead of torch's FFT, numpy's sums and
# the float32 tables. Its results must lie within the same bounds of ours.


def _float32_fbank_elsewhere(wav16: np.ndarray) -> np.ndarray:
    import scipy.fft

    f32 = np.float32
    x = np.lib.stride_tricks.sliding_window_view(wav16.astype(f32), feat.FBANK_WIN)
    x = x[:: feat.FBANK_SHIFT]
    d = x - x.mean(axis=1, keepdims=True, dtype=f32)
    prev = np.concatenate([d[:, :1], d[:, :-1]], axis=1)
    window = torch.hann_window(feat.FBANK_WIN, periodic=False).pow(0.85).numpy()
    spec = scipy.fft.rfft((d - f32(feat.PREEMPH) * prev) * window, n=feat.FBANK_NFFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(f32)
    banks = np.pad(feat.fbank_mel_banks().numpy(), ((0, 0), (0, 1))).T
    energy = power @ banks
    return np.log(np.maximum(energy, np.finfo(f32).eps))


def _float32_mel_elsewhere(wav22: np.ndarray) -> np.ndarray:
    import scipy.fft

    f32 = np.float32
    pad = (feat.N_FFT - feat.HOP) // 2
    x = np.pad(wav22.astype(f32), pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, feat.N_FFT)[:: feat.HOP]
    window = torch.hann_window(feat.WIN, periodic=True).numpy()
    spec = scipy.fft.rfft(frames * window, axis=1)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + f32(1e-9))
    mel = mag @ feat.slaney_mel_filterbank().T
    return np.log(np.maximum(mel, f32(1e-5))).T[None]


def test_another_float32_implementation_stays_within_the_bounds(kit_inputs, kit_expected):
    wav16, wav22 = kit_expected["ref_wav_16k"], kit_inputs["ref_wav_22k"]
    fb = feat.kaldi_fbank(_t(wav16)).numpy()
    assert_within(_float32_fbank_elsewhere(wav16), fb, fbank_tolerance(wav16), "fbank elsewhere")
    mel = feat.mel_spectrogram(_t(wav22)).numpy()
    assert_within(_float32_mel_elsewhere(wav22), mel, mel_tolerance(wav22), "mel elsewhere")


# ---------------------------------------------------------------- negative controls
# Each applies one real mistake to the implementation and asserts that the comparison with the
# kit, at the tolerances above, fails: the tolerances are tight enough to see it.


_FBANK_TABLES, _MEL_TABLES = feat._fbank_tables, feat._mel_tables


def _hann_not_povey(device, dtype):
    window, banks = _FBANK_TABLES(device, dtype)
    return torch.hann_window(feat.FBANK_WIN, periodic=False, dtype=dtype).to(device), banks


def _banks_one_bin_off(device, dtype):
    window, banks = _FBANK_TABLES(device, dtype)
    return window, torch.roll(banks, 1, dims=0)


@pytest.mark.parametrize("mistake", ["hann window", "mel table one bin off", "frame off by one"])
def test_fbank_negative_controls(kit_expected, monkeypatch, mistake):
    wav = kit_expected["ref_wav_16k"]
    want, tol = kit_expected["ref_fbank_raw"], fbank_tolerance(wav)
    if mistake == "hann window":
        monkeypatch.setattr(feat, "_fbank_tables", _hann_not_povey)
    elif mistake == "mel table one bin off":
        monkeypatch.setattr(feat, "_fbank_tables", _banks_one_bin_off)
    got = feat.kaldi_fbank(_t(wav)).numpy()
    if mistake == "frame off by one":
        got, want, tol = got[1:], want[:-1], tol[:-1]
    with pytest.raises(AssertionError, match="ref_fbank_raw"):
        assert_within(got, want, tol, "ref_fbank_raw")


def _mel_symmetric_window(device, dtype):
    basis, _ = _MEL_TABLES(device, dtype)
    return basis, torch.hann_window(feat.WIN, periodic=False, dtype=dtype).to(device)


def _mel_fmax_nyquist(device, dtype):
    _, window = _MEL_TABLES(device, dtype)
    basis = feat.slaney_mel_filterbank(fmax=feat.SAMPLE_RATE / 2)
    return torch.from_numpy(basis).to(device=device, dtype=dtype), window


@pytest.mark.parametrize(
    "mistake", ["symmetric window", "fmax at Nyquist", "frame off by one", "centre padding"]
)
def test_mel_negative_controls(kit_inputs, kit_expected, monkeypatch, mistake):
    wav = kit_inputs["ref_wav_22k"]
    want, tol = kit_expected["ref_mel"], mel_tolerance(wav)
    if mistake == "symmetric window":
        monkeypatch.setattr(feat, "_mel_tables", _mel_symmetric_window)
    elif mistake == "fmax at Nyquist":
        monkeypatch.setattr(feat, "_mel_tables", _mel_fmax_nyquist)
    elif mistake == "centre padding":  # pad by n_fft/2 (torch.stft's centre) instead of 384
        real_pad = F.pad

        def pad(x, p, mode="constant", value=None):
            if mode == "reflect" and p == ((feat.N_FFT - feat.HOP) // 2,) * 2:
                p = (feat.N_FFT // 2,) * 2
            return real_pad(x, p, mode=mode) if value is None else real_pad(x, p, mode, value)

        monkeypatch.setattr(feat.F, "pad", pad)
    got = feat.mel_spectrogram(_t(wav)).numpy()
    if mistake == "frame off by one":
        got, want, tol = got[..., 1:], want[..., :-1], tol[..., :-1]
    got = got[..., : want.shape[-1]]
    with pytest.raises(AssertionError, match="ref_mel"):
        assert_within(got, want, tol, "ref_mel")


@pytest.mark.parametrize("mistake", ["rolloff 0.98", "width 5", "one sample late"])
def test_resampler_negative_controls(kit_inputs, kit_expected, monkeypatch, mistake):
    wav = kit_inputs["ref_wav_22k"]
    want, tol = kit_expected["ref_wav_16k"], resample_tolerance(wav)
    feat._resample_kernel.cache_clear()
    try:
        if mistake == "rolloff 0.98":
            monkeypatch.setattr(feat, "RS_ROLLOFF", 0.98)
        elif mistake == "width 5":
            monkeypatch.setattr(feat, "RS_WIDTH", 5)
        got = feat.resample_22k_to_16k(_t(wav)).numpy()
    finally:
        monkeypatch.undo()
        feat._resample_kernel.cache_clear()
    if mistake == "one sample late":
        got, want, tol = got[1:], want[:-1], tol[:-1]
    with pytest.raises(AssertionError, match="ref_wav_16k"):
        assert_within(got, want, tol, "ref_wav_16k")


def test_tables_are_cached():
    dev, dt = torch.device("cpu"), torch.float32
    assert feat._mel_tables(dev, dt)[0] is feat._mel_tables(dev, dt)[0]
    assert feat._resample_kernel(dev, dt)[0] is feat._resample_kernel(dev, dt)[0]
    assert feat._fbank_tables(dev, dt)[1] is feat._fbank_tables(dev, dt)[1]
