"""The synthesizer (kit stage 7) against upstream RVC's outputs.

Fed the kit's own inputs of the stage (features after the index blend, coarse pitch, f0 and
every random draw), for the offline runs (prior mean/log-scale, flow output, waveform) and for
each real-time block (waveform, with skip_head/return_length and the formant stretch).
Tolerances: synth_rounding.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import (
    offline_runs,
    stream_block_features,
    stream_blocks,
    stream_settings,
    upsample_features,
)
from tests.rvc.synth_rounding import assert_rel, rtol_audio, rtol_prior, rtol_z
from voicegui.voices.rvc.checkpoints import fold_weight_norm, load_voice_model, read_torch_file
from voicegui.voices.rvc.synthesizer import Synthesizer, SynthNoise


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _kit_params():
    """(offline tags, stream block prefixes, model stems) of the kit, for parametrisation."""
    kit = rvc_kit_dir()
    if not (kit / "expected.npz").is_file():
        return [], [], []
    with np.load(kit / "expected.npz") as f:
        expected = dict.fromkeys(f.files)
    blocks = [b for s in stream_settings(kit) for b in stream_blocks(expected, s)]
    stems = sorted(p.stem.removeprefix("keys_") for p in kit.glob("keys_rvc_*.json"))
    return list(offline_runs(kit)), blocks, stems


OFFLINE_TAGS, STREAM_BLOCKS, MODEL_STEMS = _kit_params()
_MODELS: dict = {}


def model_for(rvc_assets, stem: str) -> Synthesizer:
    if stem not in _MODELS:
        _MODELS[stem] = load_voice_model(rvc_assets / "weights" / f"{stem}.pth")[0]
    return _MODELS[stem]


def noise_for(inputs: dict, prefix: str) -> SynthNoise:
    return SynthNoise(
        z=_t(inputs[prefix + "zp_noise"]),
        sine=_t(inputs[prefix + "sine_noise"]),
        phase=_t(inputs[prefix + "rand_ini"]),
    )


@pytest.mark.parametrize("stem", MODEL_STEMS)
def test_structure_matches_key_listing(rvc_kit, rvc_assets, stem):
    listing = json.loads((rvc_kit / f"keys_{stem}.json").read_text())["entries"]
    on_disk = {}
    for key, meta in listing.items():
        key = key.removeprefix(stem + ".")
        if key.endswith("weight_g"):
            continue
        on_disk[key.replace("weight_v", "weight")] = tuple(meta["shape"])
    model = model_for(rvc_assets, stem)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == on_disk


@pytest.mark.parametrize("stem", MODEL_STEMS)
def test_every_tensor_loaded(rvc_assets, stem):
    """The built model holds the file's tensors (weight norm folded), all float32."""
    weight = read_torch_file(rvc_assets / "weights" / f"{stem}.pth")["weight"]
    folded = fold_weight_norm(weight, stem)
    own = model_for(rvc_assets, stem).state_dict()
    for k, v in folded.items():
        assert own[k].dtype == torch.float32
        assert torch.equal(own[k], v), k


@pytest.mark.slow
@pytest.mark.parametrize("tag", OFFLINE_TAGS)
def test_offline_synthesizer(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, tag):
    E = rvc_expected
    model = model_for(rvc_assets, offline_runs(rvc_kit)[tag]["model"])
    feats = E.get(f"{tag}_feats_blend", E[f"{tag}_feats"])
    pitch = _t(E[f"{tag}_synth_pitch"])
    frames = pitch.shape[-1]
    out = model.infer(
        upsample_features(feats, frames),
        pitch,
        _t(E[f"{tag}_synth_pitchf"]),
        0,
        noise=noise_for(rvc_inputs, f"{tag}_"),
    )
    assert out.audio.shape == (1, 1, frames * model.upp)
    assert_rel(out.m_p.numpy(), E[f"{tag}_m_p"], rtol_prior(model, frames), f"{tag}_m_p")
    assert_rel(out.logs_p.numpy(), E[f"{tag}_logs_p"], rtol_prior(model, frames), f"{tag}_logs_p")
    assert_rel(out.z.numpy(), E[f"{tag}_z"], rtol_z(model, frames), f"{tag}_z")
    assert_rel(
        out.audio.numpy(), E[f"{tag}_synth_out"], rtol_audio(model, frames), f"{tag}_synth_out"
    )


@pytest.mark.parametrize("prefix", STREAM_BLOCKS)
def test_stream_block_synthesizer(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, prefix):
    E = rvc_expected
    settings = stream_settings(rvc_kit)[prefix.split("_")[0]]
    model = model_for(rvc_assets, settings["model"])
    pitch = _t(E[prefix + "synth_pitch"])
    frames = pitch.shape[-1]
    skip_head, n = int(settings["skip_head"]), int(settings["return_length"])
    n2 = int(settings["return_length2"])
    assert frames == int(settings["p_len"])
    out = model.infer(
        upsample_features(stream_block_features(E, prefix), frames),
        pitch,
        _t(E[prefix + "synth_pitchf"]),
        0,
        skip_head=skip_head,
        return_length=n,
        return_length2=n2,
        noise=noise_for(rvc_inputs, prefix),
    )
    assert out.z.shape[-1] == n
    assert out.audio.shape == (1, 1, n2 * model.upp)
    assert_rel(
        out.audio.numpy(), E[prefix + "synth_out"], rtol_audio(model, frames), prefix + "synth_out"
    )


def test_default_draws_are_seeded(rvc_assets, rvc_expected):
    model = model_for(rvc_assets, MODEL_STEMS[-1])
    prefix = STREAM_BLOCKS[0]
    E = rvc_expected
    pitch = _t(E[prefix + "synth_pitch"])
    args = (upsample_features(stream_block_features(E, prefix), pitch.shape[-1]), pitch)
    kw = dict(skip_head=pitch.shape[-1] - 12, return_length=8)
    f0 = _t(E[prefix + "synth_pitchf"])
    model.reset_rng(7)
    a = model.infer(*args, f0, **kw).audio
    b = model.infer(*args, f0, **kw).audio
    model.reset_rng(7)
    c = model.infer(*args, f0, **kw).audio
    model.reset_rng()
    assert torch.equal(a, c)
    assert not torch.equal(a, b)  # fresh draws on every call, as upstream
    assert torch.isfinite(a).all() and a.abs().max() < 1


def test_bad_inputs_are_named(rvc_assets, rvc_expected):
    model = model_for(rvc_assets, MODEL_STEMS[-1])
    prefix = STREAM_BLOCKS[0]
    pitch = _t(rvc_expected[prefix + "synth_pitch"])
    phone = upsample_features(stream_block_features(rvc_expected, prefix), pitch.shape[-1])
    f0 = _t(rvc_expected[prefix + "synth_pitchf"])
    with pytest.raises(ValueError, match="pitch-conditioned"):
        model.infer(phone)
    with pytest.raises(ValueError, match="same number of frames"):
        model.infer(phone, pitch[:, 1:], f0[:, 1:])
    with pytest.raises(ValueError, match="speaker id"):
        model.infer(phone, pitch, f0, model.emb_g.num_embeddings)
    with pytest.raises(ValueError, match="sine noise"):
        model.infer(phone, pitch, f0, noise=SynthNoise(sine=torch.zeros(3)))
