"""Negative controls for the synthesizer's parity tolerances.

Each test applies one real mistake (most from the kit README's quirks list) and asserts that the
comparison with the kit fails at the tolerance test_synth.py uses, so those tolerances are tight
enough to see it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import (
    offline_runs,
    stream_block_features,
    stream_blocks,
    stream_settings,
    upsample_features,
)
from tests.rvc.synth_rounding import assert_rel, rtol_audio, rtol_prior, rtol_z
from voicegui.voices.rvc import nsf, synthesizer
from voicegui.voices.rvc.checkpoints import load_voice_model, read_torch_file
from voicegui.voices.rvc.synthesizer import SynthNoise


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _first_offline_tag() -> str | None:
    kit = rvc_kit_dir()
    return next(iter(offline_runs(kit)), None) if (kit / "README.md").is_file() else None


TAG = _first_offline_tag()


@pytest.fixture
def model(rvc_kit, rvc_assets):
    """A fresh model per test (some controls change its weights)."""
    return load_voice_model(rvc_assets / "weights" / f"{offline_runs(rvc_kit)[TAG]['model']}.pth")[
        0
    ]


def run_offline(model, I, E, frames: int | None = None):
    pitch = _t(E[f"{TAG}_synth_pitch"])
    frames = frames or pitch.shape[-1]
    feats = E.get(f"{TAG}_feats_blend", E[f"{TAG}_feats"])
    return model.infer(
        upsample_features(feats, pitch.shape[-1]),
        pitch,
        _t(E[f"{TAG}_synth_pitchf"]),
        0,
        noise=SynthNoise(z=_t(I[f"{TAG}_zp_noise"]), sine=_t(I[f"{TAG}_sine_noise"])),
    )


def _fails(actual, expected, rtol: float, name: str) -> None:
    with pytest.raises(AssertionError, match=name):
        assert_rel(actual, expected, rtol, name)


def _audio_fails(model, out, E):
    frames = E[f"{TAG}_synth_pitch"].shape[-1]
    _fails(out.audio.numpy(), E[f"{TAG}_synth_out"], rtol_audio(model, frames), "synth_out")


@pytest.mark.slow
def test_final_activation_slope_0_1(model, rvc_inputs, rvc_expected, monkeypatch):
    """The decoder's last leaky ReLU with the resblocks' slope 0.1 instead of torch's 0.01."""
    real = F.leaky_relu

    def wrong(x, negative_slope=0.01, *a, **k):
        return real(x, 0.1 if negative_slope == 0.01 else negative_slope, *a, **k)

    monkeypatch.setattr(nsf.F, "leaky_relu", wrong)
    _audio_fails(model, run_offline(model, rvc_inputs, rvc_expected), rvc_expected)


@pytest.mark.slow
def test_phase_summed_in_float32(model, rvc_inputs, rvc_expected, monkeypatch):
    """A float32 running sum of the per-sample phase (instead of float64 partial sums)."""
    real = torch.cumsum

    def float32_running_sum(x, dim, *a, **k):
        if x.dtype != torch.float64:
            return real(x, dim, *a, **k)
        y = np.cumsum(x.float().numpy(), axis=dim, dtype=np.float32)  # sequential float32
        return torch.from_numpy(y).double()

    monkeypatch.setattr(nsf.torch, "cumsum", float32_running_sum)
    _audio_fails(model, run_offline(model, rvc_inputs, rvc_expected), rvc_expected)


@pytest.mark.slow
def test_prior_without_temperature(model, rvc_inputs, rvc_expected, monkeypatch):
    """z_p sampled at temperature 1 instead of RVC's 0.66666."""
    monkeypatch.setattr(synthesizer, "PRIOR_SCALE", 1.0)
    out = run_offline(model, rvc_inputs, rvc_expected)
    frames = rvc_expected[f"{TAG}_synth_pitch"].shape[-1]
    _fails(out.z.numpy(), rvc_expected[f"{TAG}_z"], rtol_z(model, frames), "z")


@pytest.mark.slow
def test_flow_coupling_before_flip(model, rvc_inputs, rvc_expected):
    """Reversing the flow with each coupling before its flip (the forward order)."""
    flows = model.flow.flows
    pairs = [flows[i : i + 2] for i in range(0, len(flows), 2)]
    model.flow.flows = torch.nn.ModuleList(m for c, f in pairs for m in (f, c))
    out = run_offline(model, rvc_inputs, rvc_expected)
    frames = rvc_expected[f"{TAG}_synth_pitch"].shape[-1]
    _fails(out.z.numpy(), rvc_expected[f"{TAG}_z"], rtol_z(model, frames), "z")


@pytest.mark.slow
def test_relative_window_9(model, rvc_inputs, rvc_expected):
    """Relative attention over offsets -9..9 instead of -10..10."""
    for attn in model.enc_p.encoder.attn_layers:
        attn.window = 9
        attn.emb_rel_k = torch.nn.Parameter(attn.emb_rel_k[:, 1:-1])
        attn.emb_rel_v = torch.nn.Parameter(attn.emb_rel_v[:, 1:-1])
    out = run_offline(model, rvc_inputs, rvc_expected)
    frames = rvc_expected[f"{TAG}_synth_pitch"].shape[-1]
    _fails(out.m_p.numpy(), rvc_expected[f"{TAG}_m_p"], rtol_prior(model, frames), "m_p")


@pytest.mark.slow
def test_transposed_conv_normalised_per_output_channel(
    model, rvc_kit, rvc_assets, rvc_inputs, rvc_expected
):
    """Weight norm of the upsamplers taken per output channel (dim 1 of the (in, out, k)
    weight) instead of per input channel."""
    stem = offline_runs(rvc_kit)[TAG]["model"]
    weight = read_torch_file(rvc_assets / "weights" / f"{stem}.pth")["weight"]
    with torch.no_grad():
        for i, up in enumerate(model.dec.ups):
            v = weight[f"dec.ups.{i}.weight_v"].double()
            g = weight[f"dec.ups.{i}.weight_g"].double()
            per_out = v.pow(2).sum(dim=(0, 2), keepdim=True).sqrt()
            up.weight.copy_((v * g / per_out).float())
    _audio_fails(model, run_offline(model, rvc_inputs, rvc_expected), rvc_expected)


def test_stream_flow_without_left_context(
    rvc_kit, rvc_assets, rvc_inputs, rvc_expected, monkeypatch
):
    """The flow started at skip_head (no left context) instead of 24 frames before it."""
    stream = next(iter(stream_settings(rvc_kit)))
    settings = stream_settings(rvc_kit)[stream]
    model = load_voice_model(rvc_assets / "weights" / f"{settings['model']}.pth")[0]
    prefix = stream_blocks(rvc_expected, stream)[-1]
    monkeypatch.setattr(synthesizer, "FLOW_CONTEXT", 0)
    E, n = rvc_expected, int(settings["return_length"])
    pitch = _t(E[prefix + "synth_pitch"])
    frames = pitch.shape[-1]
    skip_head = int(settings["skip_head"])
    # the z noise drawn for the wider flow window: keep the frames that are still used
    zn = _t(rvc_inputs[prefix + "zp_noise"])
    zn = zn[:, :, zn.shape[-1] - (frames - skip_head) :]
    out = model.infer(
        upsample_features(stream_block_features(E, prefix), frames),
        pitch,
        _t(E[prefix + "synth_pitchf"]),
        0,
        skip_head=skip_head,
        return_length=n,
        return_length2=int(settings["return_length2"]),
        noise=SynthNoise(z=zn, sine=_t(rvc_inputs[prefix + "sine_noise"])),
    )
    _fails(out.audio.numpy(), E[prefix + "synth_out"], rtol_audio(model, frames), "synth_out")
