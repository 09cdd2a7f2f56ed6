"""Negative controls for the RVC front ends' parity tolerances.

Each test makes one real mistake (the kind the kit README's quirks list warns about, or a
plausible slip in a port) and asserts that the comparison with the kit *fails* at the very
tolerance the parity test uses, so those tolerances are tight enough to see it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.rvc import test_fcpe, test_rmvpe
from tests.rvc.front_kit import bundled_fcpe, key_from, kit_hubert, kit_rmvpe, stream_geometry, t
from tests.rvc.front_rounding import (
    fan_in_sum,
    hubert_fan_in_sum,
    resample_tolerance,
    rounding_rtol,
    salience_tolerance,
)
from tests.rvc.test_resample import probe_rate
from tests.seedvc.conftest import assert_rel
from tests.seedvc.rounding import assert_within
from voicegui.voices.rvc import f0 as f0post
from voicegui.voices.rvc import fcpe as fcpe_module
from voicegui.voices.rvc import hubert as hubert_module
from voicegui.voices.rvc import mel as mel_module
from voicegui.voices.rvc import resample as rs
from voicegui.voices.rvc import rmvpe as R

pytestmark = pytest.mark.slow


def fails_within(actual, expected, tol, name):
    with pytest.raises(AssertionError, match=name):
        assert_within(actual, expected, tol, name)


def fails_rel(actual, expected, rtol, name):
    with pytest.raises(AssertionError, match=name):
        assert_rel(actual, expected, rtol, name)


# ---------------------------------------------------------------- resampler


@pytest.mark.parametrize("mistake", ["width 5", "rolloff 0.945", "no window"])
def test_resampler(rvc_inputs, rvc_expected, mistake):
    rate = probe_rate(rvc_inputs, rvc_expected)
    x = t(rvc_inputs["rs_in"])
    if mistake == "width 5":
        kernel, width = rs.sinc_kernel.__wrapped__(rate, 16000, None, torch.float32, 5)
    elif mistake == "rolloff 0.945":
        kernel, width = rs.sinc_kernel.__wrapped__(rate, 16000, None, torch.float32, 6, 0.945)
    else:  # a plain truncated sinc: the Hann taper forgotten
        _, width = rs.sinc_kernel(rate, 16000)
        orig, new = rs.reduced_ratio(rate, 16000)
        taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
        tt = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + taps) * 0.99
        tt = tt.clamp(-6, 6) * math.pi
        kernel = (torch.where(tt == 0, 1.0, tt.sin() / tt) * 0.99 / orig).float()
    orig, _ = rs.reduced_ratio(rate, 16000)
    y = F.conv1d(F.pad(x, (width, width + orig))[None, None], kernel, stride=orig)
    y = y.transpose(1, 2).reshape(-1)[: rvc_expected["rs_out_16k"].shape[0]]
    tol = resample_tolerance(rvc_inputs["rs_in"], rate, 16000)
    fails_within(y.numpy(), rvc_expected["rs_out_16k"], tol, "rs_out_16k")


def test_stream_block_resampled_without_the_earlier_context(rvc_inputs, rvc_expected):
    """Block 2 resampled on its own (zeros before it) instead of with the 20 ms before it."""
    g = stream_geometry(rvc_inputs, rvc_expected, "s1")
    k = g.blocks[1]
    block = rvc_inputs["s1_in"][(k - 1) * g.block_frame : k * g.block_frame]
    chunk = np.concatenate([np.zeros(2 * g.zc, np.float32), block])
    out = rs.to_16k(t(chunk), g.sr)[160:]
    tol = resample_tolerance(chunk, g.sr, 16000)[160:]
    fails_within(out.numpy(), rvc_expected[f"s1_b{k}_res_new"], tol, "res_new")


# ---------------------------------------------------------------- f0 post-processing (exact)


def test_f0_shifted_before_filling_is_not_bitwise_upstream(rvc_expected):
    """The README's order is fill, then shift; the other order rounds differently on the
    filled frames (FCPE's speech f0 has unvoiced frames to fill)."""
    raw = rvc_expected["fcpe_f0"].reshape(-1)
    assert (raw == 0).any()
    key = key_from(raw, rvc_expected["rt_fcpe_pitchf"])
    wrong = f0post.fill_unvoiced(f0post.shift(np.asarray(raw), key))
    _, pitchf = f0post.quantise_torch(wrong)
    right = f0post.pitch_realtime(raw, key)[1]
    assert np.array_equal(right.numpy(), rvc_expected["rt_fcpe_pitchf"])
    assert not np.array_equal(pitchf.numpy(), rvc_expected["rt_fcpe_pitchf"])


def test_unvoiced_frames_left_at_zero(rvc_expected):
    raw = rvc_expected["fcpe_f0"].reshape(-1)
    assert (raw == 0).any()
    key = key_from(raw, rvc_expected["rt_fcpe_pitchf"])
    pitch, _ = f0post.quantise_torch(f0post.shift(raw, key))
    assert not np.array_equal(pitch.numpy(), rvc_expected["rt_fcpe_pitch"])


def test_coarse_scale_of_another_range(rvc_inputs, rvc_expected, monkeypatch):
    """FCPE's own 32.7..1975.5 Hz range instead of RVC's 50..1100 Hz for the coarse scale."""
    monkeypatch.setattr(f0post, "MEL_MIN", 1127 * np.log(1 + 32.7 / 700))
    monkeypatch.setattr(f0post, "MEL_MAX", 1127 * np.log(1 + 1975.5 / 700))
    raw = rvc_inputs["f0q_in"].astype(np.float64)
    pitch, _ = f0post.pitch_realtime(raw, key_from(raw, rvc_expected["f0q_rt_pitchf"]))
    assert not np.array_equal(pitch.numpy(), rvc_expected["f0q_rt_pitch"])


def test_formant_scale_folded_into_one_factor(rvc_inputs, rvc_expected):
    """x * (a / b) instead of upstream's x * a / b: a last-bit difference the exact test sees."""
    g = stream_geometry(rvc_inputs, rvc_expected, "s2")
    assert g.return_length2 != g.return_length  # the stream with a formant shift
    cache = f0post.PitchCache()
    differs = False
    for k in g.blocks:
        cache.push(
            t(rvc_expected[f"s2_b{k}_pitch"]), t(rvc_expected[f"s2_b{k}_pitchf"]), g.shift_frames
        )
        frames = rvc_expected[f"s2_b{k}_synth_pitchf"].shape[-1]
        wrong = cache.pitchf[None, -frames:] * (g.return_length2 / g.return_length)
        differs |= not np.array_equal(wrong.numpy(), rvc_expected[f"s2_b{k}_synth_pitchf"])
    assert differs


# ---------------------------------------------------------------- HuBERT (rounding_rtol)


@pytest.fixture(scope="module")
def hubert(rvc_assets):
    return kit_hubert(rvc_assets)


def hubert_rtol(model, samples, layers, projected=False):
    return rounding_rtol(hubert_fan_in_sum(model.shape, samples, layers, projected))


def test_v1_from_layer_10(hubert, rvc_inputs, rvc_expected):
    wav = t(rvc_inputs["src_wav_16k"])
    with torch.inference_mode():
        out = hubert.final_proj(hubert.hidden_states(wav, 10)[-1])
    rtol = hubert_rtol(hubert, wav.numel(), 9, projected=True)
    fails_rel(out.numpy(), rvc_expected["hubert_v1_feats"], rtol, "hubert_v1_feats")


def test_input_normalised(hubert, rvc_inputs, rvc_expected):
    """Upstream feeds the waveform as it is (preprocessor_config's do_normalize is not read)."""
    wav = t(rvc_inputs["src_wav_16k"])
    norm = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
    rtol = hubert_rtol(hubert, wav.numel(), hubert.shape.layers)
    fails_rel(hubert.features(norm, "v2").numpy(), rvc_expected["hubert_v2_feats"], rtol, "v2")


def test_tanh_gelu(hubert, rvc_inputs, rvc_expected, monkeypatch):
    """transformers' "gelu_new" (tanh approximation) instead of the exact erf GELU."""
    real = F.gelu
    monkeypatch.setattr(hubert_module.F, "gelu", lambda x: real(x, approximate="tanh"))
    wav = t(rvc_inputs["src_wav_16k"])
    rtol = hubert_rtol(hubert, wav.numel(), hubert.shape.layers)
    fails_rel(hubert.features(wav, "v2").numpy(), rvc_expected["hubert_v2_feats"], rtol, "v2")


def test_positional_conv_normalised_per_output_channel(
    hubert, rvc_assets, rvc_inputs, rvc_expected
):
    """The quirk: HuBERT's positional conv is weight-normed per kernel tap (dim 2)."""
    state = torch.load(rvc_assets / "hubert_base" / "pytorch_model.bin", weights_only=True)
    prefix = "encoder.pos_conv_embed.conv."
    g, v = state[prefix + "weight_g"], state[prefix + "weight_v"]
    per_channel = v.flatten(1).norm(dim=1)[:, None, None]
    wrong = copy.deepcopy(hubert)
    wrong.encoder.pos_conv_embed.conv.weight.data = v * (g / per_channel)
    wav = t(rvc_inputs["src_wav_16k"])
    with torch.inference_mode():
        h0 = wrong.hidden_states(wav, 0)[0]
    fails_rel(
        h0.numpy(), rvc_expected["hubert_hidden_0"], hubert_rtol(hubert, wav.numel(), 0), "h0"
    )


# ---------------------------------------------------------------- RMVPE


@pytest.fixture(scope="module")
def rmvpe(rvc_assets):
    return kit_rmvpe(rvc_assets)


def rmvpe_salience_fails(rmvpe, logits, expected):
    tol = salience_tolerance(rounding_rtol(fan_in_sum(rmvpe.model)), logits.numpy())
    fails_within(torch.sigmoid(logits)[0].numpy(), expected, tol, "rmvpe_hidden")


def test_mel_padded_with_the_log_floor(rmvpe, rvc_expected, monkeypatch):
    """The quirk: the mel is padded to 32 frames with zeros in the log domain, not log(1e-5)."""
    mel = t(rvc_expected["rmvpe_mel"])
    assert mel.shape[-1] % R.TIME_MULTIPLE  # the kit's length needs padding
    real_pad = F.pad
    floor = math.log(R.CLAMP)
    monkeypatch.setattr(R.F, "pad", lambda x, p, *a, **k: real_pad(x, p, value=floor))
    with torch.inference_mode():
        logits = rmvpe.model.logits(mel)
    rmvpe_salience_fails(rmvpe, logits, rvc_expected["rmvpe_hidden"])


def test_network_in_float16(rmvpe, rvc_expected):
    """The released float16 weights run without widening (every layer's output in float16,
    emulated by rounding each layer's output)."""
    model = copy.deepcopy(rmvpe.model)

    def to_half(_module, _inputs, out):
        if isinstance(out, tuple):
            return (out[0].half().float(), *out[1:])
        return out.half().float()

    for m in model.modules():
        layer = torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.BatchNorm2d
        if isinstance(m, layer | torch.nn.Linear | torch.nn.GRU):
            m.register_forward_hook(to_half)
    with torch.inference_mode():
        logits = model.logits(t(rvc_expected["rmvpe_mel"]))
    rmvpe_salience_fails(rmvpe, logits, rvc_expected["rmvpe_hidden"])


@pytest.mark.parametrize("mistake", ["slaney scale", "symmetric window", "not centred"])
def test_log_mel(rvc_inputs, rvc_expected, monkeypatch, mistake):
    wav = rvc_inputs["src_wav_16k"]
    if mistake == "slaney scale":
        real = mel_module.mel_filterbank
        monkeypatch.setattr(R, "mel_filterbank", lambda *a, htk: real(*a, htk=False))
        R._mel_tables.cache_clear()
        mel = R.log_mel(t(wav))
        R._mel_tables.cache_clear()
    elif mistake == "symmetric window":
        basis = torch.from_numpy(R.mel_filterbank(16000, R.N_FFT, R.N_MELS, R.FMIN, R.FMAX, True))
        window = torch.hann_window(R.N_FFT, periodic=False)
        spec = torch.stft(t(wav)[None], R.N_FFT, R.HOP, window=window, return_complex=True)
        mel = torch.log(torch.clamp(basis @ spec.abs(), min=R.CLAMP))
    else:  # torch.stft without centring: frame i is centred on sample 160 i + 512
        basis = torch.from_numpy(R.mel_filterbank(16000, R.N_FFT, R.N_MELS, R.FMIN, R.FMAX, True))
        x = F.pad(t(wav), (0, R.N_FFT))[None]
        spec = torch.stft(
            x, R.N_FFT, R.HOP, window=torch.hann_window(R.N_FFT), center=False, return_complex=True
        )[..., : R.mel_frames(wav.shape[0])]
        mel = torch.log(torch.clamp(basis @ spec.abs(), min=R.CLAMP))
    fails_within(mel.numpy(), rvc_expected["rmvpe_mel"], test_rmvpe.mel_tolerance(wav), "rmvpe_mel")


def test_decode_over_eight_bins(rvc_expected):
    sal = rvc_expected["rmvpe_hidden"]
    centre = sal.argmax(1)
    padded = np.pad(sal, ((0, 0), (R.LOCAL, R.LOCAL)))
    idx = centre[:, None] + R.LOCAL + np.arange(-R.LOCAL, R.LOCAL)[None]  # c-4 .. c+3
    w = np.take_along_axis(padded, idx, 1)
    f0 = 10 * 2 ** ((w * R._CENTS[idx]).sum(1) / w.sum(1) / 1200)
    w9, cents = test_rmvpe.local_window(sal, centre)
    mean = (w9 * cents).sum(1) / w9.sum(1)
    tol = test_rmvpe.hz_tolerance_from_cents(
        rvc_expected["rmvpe_f0"], test_rmvpe.DECODE_WEIGHT_SUM * test_rmvpe.U * mean
    )
    fails_within(f0, rvc_expected["rmvpe_f0"], tol, "rmvpe_f0")


# ---------------------------------------------------------------- FCPE


@pytest.fixture(scope="module")
def fcpe():
    return bundled_fcpe()


@pytest.fixture(scope="module")
def exact(fcpe):
    return copy.deepcopy(fcpe.model).double()


def fcpe_fails(fcpe, exact, wav, want):
    with pytest.raises(AssertionError, match="fcpe_f0"):
        test_fcpe.compare(fcpe, exact, wav, want, "fcpe_f0")


def test_fcpe_framed_like_torch_stft_centre(fcpe, exact, rvc_inputs, rvc_expected, monkeypatch):
    """Padding by n_fft/2 (torch.stft's centring) instead of (n_fft - hop)/2: 80 samples late."""
    mel = fcpe.mel
    real_pad = F.pad

    def centred(x, pad, mode="constant", value=None):
        return real_pad(x, (mel.n_fft // 2, mel.n_fft // 2), mode=mode)

    monkeypatch.setattr(fcpe_module.F, "pad", centred)
    fcpe_fails(fcpe, exact, rvc_inputs["src_wav_16k"], rvc_expected["fcpe_f0"])


def test_fcpe_output_weight_norm_over_the_wrong_dim(fcpe, exact, rvc_inputs, rvc_expected):
    ckpt = torch.load(fcpe_module.bundled_weights_path(), map_location="cpu", weights_only=True)
    g, v = ckpt["model"]["output_proj.weight_g"], ckpt["model"]["output_proj.weight_v"]
    wrong = copy.deepcopy(fcpe)
    wrong.model = copy.deepcopy(fcpe.model)
    wrong.model.output_proj.weight.data = v * (g / v.norm(dim=0, keepdim=True))
    fcpe_fails(wrong, exact, rvc_inputs["src_wav_16k"], rvc_expected["fcpe_f0"])


def test_fcpe_on_the_htk_scale(fcpe, exact, rvc_inputs, rvc_expected):
    wrong = copy.deepcopy(fcpe)
    m = wrong.mel
    wrong.mel.basis = torch.from_numpy(
        mel_module.mel_filterbank(m.sr, m.n_fft, m.basis.shape[0], 0, 8000, htk=True)
    )
    fcpe_fails(wrong, exact, rvc_inputs["src_wav_16k"], rvc_expected["fcpe_f0"])
