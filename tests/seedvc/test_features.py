"""Front ends (mel, 22.05->16 kHz resampler, Kaldi fbank) against the Seed-VC parity kit."""

from __future__ import annotations

import numpy as np
import torch

from tests.seedvc.conftest import assert_abs, assert_rel
from voicegui.voices.seedvc import features as feat


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_ref_mel(kit_inputs, kit_expected):
    mel = feat.mel_spectrogram(_t(kit_inputs["ref_wav_22k"]))
    assert mel.dtype == torch.float32
    assert_abs(mel.numpy(), kit_expected["ref_mel"], 1e-4, "ref_mel")


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
    assert_rel(wav16.numpy(), kit_expected["ref_wav_16k"], 1e-5, "ref_wav_16k")


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
    assert_abs(fb.numpy(), kit_expected["ref_fbank_raw"], 1e-4, "ref_fbank_raw")


def test_ref_fbank_mean_normalised(kit_expected):
    fb = feat.mean_normalise(feat.kaldi_fbank(_t(kit_expected["ref_wav_16k"])))
    assert_abs(fb.numpy(), kit_expected["ref_fbank"], 1e-4, "ref_fbank")


def test_fbank_chain_from_22k(kit_inputs, kit_expected):
    wav16 = feat.resample_22k_to_16k(_t(kit_inputs["ref_wav_22k"]))
    fb = feat.mean_normalise(feat.kaldi_fbank(wav16))
    assert_abs(fb.numpy(), kit_expected["ref_fbank"], 1e-4, "ref_fbank (from 22.05 kHz)")


def test_tables_are_cached():
    dev, dt = torch.device("cpu"), torch.float32
    assert feat._mel_tables(dev, dt)[0] is feat._mel_tables(dev, dt)[0]
    assert feat._resample_kernel(dev, dt)[0] is feat._resample_kernel(dev, dt)[0]
    assert feat._fbank_tables(dev, dt)[1] is feat._fbank_tables(dev, dt)[1]
