"""CAMPPlus speaker encoder and the style pipeline against the Seed-VC parity kit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import assert_rel, fbank_frames, rounding_rtol, rtol_style
from voicegui.voices.seedvc.campplus import CAMPPlus, load_campplus, style_vector
from voicegui.voices.seedvc.checkpoints import CheckpointError, read_checkpoint

CKPT = "campplus_cn_common.bin"


@pytest.fixture(scope="module")
def campplus(kit_checkpoints) -> CAMPPlus:
    return load_campplus(kit_checkpoints / CKPT)


@pytest.fixture(scope="module")
def debug(campplus, kit_expected) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return campplus.forward_debug(torch.from_numpy(kit_expected["ref_fbank"])[None])


def test_structure_matches_key_listing(seedvc_kit):
    listing = json.loads((seedvc_kit / "keys_campplus.json").read_text())["entries"]
    on_disk = {
        k.removeprefix("campplus.").replace("xvector.dense.", "dense."): tuple(v["shape"])
        for k, v in listing.items()
    }
    own = {k: tuple(v.shape) for k, v in CAMPPlus().state_dict().items()}
    assert own == on_disk


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("campplus_head_out", "head_out"),
        ("campplus_xvector_out", "xvector_out"),
        ("campplus_stats", "stats"),
    ],
)
def test_debug_points(debug, kit_expected, name, key):
    frames = kit_expected["ref_fbank"].shape[0]
    rtol = {
        "head_out": rounding_rtol(167),  # the 2-D head's convolutions: sum sqrt(fan-in) 167
        "xvector_out": rounding_rtol(167 + 3381),  # + the TDNN and dense CAM blocks, per frame
        "stats": rtol_style(frames),  # mean and std over the frames average the errors
    }[key]
    assert_rel(debug[key].numpy(), kit_expected[name], rtol, name)


def test_embedding_from_fbank(debug, kit_expected):
    rtol = rtol_style(kit_expected["ref_fbank"].shape[0])
    assert_rel(debug["embedding"].numpy(), kit_expected["ref_style"], rtol, "ref_style (fbank)")


@pytest.mark.parametrize("name", ["ref_style", "e2e_style"])
def test_style_vector_from_22k(campplus, kit_inputs, kit_expected, kit_geometry, name):
    ref = kit_inputs["ref_wav_22k"]
    if name == "e2e_style":  # upstream's real-time prompt: the reference cropped to Max prompt
        ref = ref[: kit_geometry.prompt_samples]
    style = style_vector(torch.from_numpy(np.ascontiguousarray(ref)), campplus)
    assert style.shape == (1, 192)
    assert_rel(style.numpy(), kit_expected[name], rtol_style(fbank_frames(len(ref))), name)


def test_new_dense_key_layout_loads(kit_checkpoints, tmp_path, campplus):
    state = read_checkpoint(kit_checkpoints / CKPT)
    renamed = {k.replace("xvector.dense.", "dense."): v for k, v in state.items()}
    torch.save(renamed, tmp_path / CKPT)
    other = load_campplus(tmp_path / CKPT)
    for (k, a), b in zip(other.state_dict().items(), campplus.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_missing_key_is_named(kit_checkpoints, tmp_path):
    state = read_checkpoint(kit_checkpoints / CKPT)
    gone = "xvector.block2.tdnnd7.cam_layer.linear1.weight"
    del state[gone]
    torch.save(state, tmp_path / CKPT)
    with pytest.raises(CheckpointError, match=gone.replace(".", r"\.")):
        load_campplus(tmp_path / CKPT)


def test_wrong_shape_is_named(kit_checkpoints, tmp_path):
    state = read_checkpoint(kit_checkpoints / CKPT)
    state["head.conv1.weight"] = torch.zeros(16, 1, 3, 3)
    torch.save(state, tmp_path / CKPT)
    with pytest.raises(CheckpointError, match=r"head\.conv1\.weight"):
        load_campplus(tmp_path / CKPT)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_campplus(tmp_path / "nope.bin")


def test_eval_mode_uses_running_stats(campplus):
    assert not campplus.training
    x = torch.randn(2, 120, 80)
    with torch.inference_mode():
        both = campplus(x)
        one = campplus(x[1:])
    # batch 2 against batch 1: the same sums in other orders (see rtol_style); a batch-statistics
    # mistake would make the rows depend on each other by O(1)
    rtol = rtol_style(120)
    np.testing.assert_allclose(both[1:].numpy(), one.numpy(), rtol=rtol, atol=rtol * 1e-1)
