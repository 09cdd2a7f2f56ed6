"""HiFT vocoder against the Seed-VC parity kit.

The kit vocodes the standalone CFG CFM output (prompt frames dropped): all its frames for
hift_wav, the first F with an explicit f0 contour of F frames for hift_f0x_wav.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import (
    ATOL_VOICED,
    RTOL_F0,
    RTOL_HIFT,
    assert_abs,
    assert_rel,
    standalone_prompt_frames,
)
from voicegui.voices.seedvc.checkpoints import CheckpointError, read_checkpoint
from voicegui.voices.seedvc.hift import HiFTGenerator, _fold_weight_norm, load_hift

CKPT = "hift.pt"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.fixture(scope="module")
def hift(kit_checkpoints) -> HiFTGenerator:
    return load_hift(kit_checkpoints / CKPT)


@pytest.fixture(scope="module")
def mel(kit_expected) -> torch.Tensor:
    return _t(kit_expected["cfm_out_s10_cfg07"][:, :, standalone_prompt_frames(kit_expected) :])


def test_structure_matches_key_listing(seedvc_kit):
    listing = json.loads((seedvc_kit / "keys_hift.json").read_text())["entries"]
    on_disk = {}
    for k, v in listing.items():
        k = k.removeprefix("hift.")
        if k.endswith("weight_g"):
            continue
        on_disk[k.replace("weight_v", "weight")] = tuple(v["shape"])
    own = {k: tuple(v.shape) for k, v in HiFTGenerator().state_dict().items()}
    assert own == on_disk


def test_hift_f0(hift, mel, kit_expected):
    with torch.inference_mode():
        f0 = hift.predict_f0(mel)
    assert_rel(f0.numpy(), kit_expected["hift_f0"], RTOL_F0, "hift_f0")


def test_hift_wav(hift, mel, kit_inputs, kit_expected):
    with torch.inference_mode():
        wav = hift(mel, phase=_t(kit_inputs["hift_phase"]), noise=_t(kit_inputs["hift_noise"]))
    assert wav.shape == (1, 256 * mel.shape[-1])
    assert_rel(wav.numpy(), kit_expected["hift_wav"], RTOL_HIFT, "hift_wav")


def test_hift_explicit_f0(hift, mel, kit_inputs, kit_expected):
    frames = kit_inputs["hift_f0x_f0"].shape[-1]
    with torch.inference_mode():
        wav = hift(
            mel[:, :, :frames],
            f0=_t(kit_inputs["hift_f0x_f0"]),
            phase=_t(kit_inputs["hift_f0x_phase"]),
            noise=_t(kit_inputs["hift_f0x_noise"]),
        )
    assert_abs(wav.numpy(), kit_expected["hift_f0x_wav"], ATOL_VOICED, "hift_f0x_wav")


def test_default_draws_are_seeded(hift, mel):
    m = mel[:, :, :20]
    with torch.inference_mode():
        hift.reset_rng(123)
        a = hift(m)
        b = hift(m)
        hift.reset_rng(123)
        c = hift(m)
    assert torch.equal(a, c)
    assert not torch.equal(a, b)  # fresh draws on every call, as upstream
    assert a.abs().max() <= 0.99


def test_weight_norm_fold_matches_torch():
    # ConvTranspose1d weights are (in, out, k): torch's weight norm (dim 0) is per input channel.
    torch.manual_seed(0)
    for mod in (torch.nn.Conv1d(6, 4, 3), torch.nn.ConvTranspose1d(6, 4, 16, stride=8)):
        wn = torch.nn.utils.parametrizations.weight_norm(mod)
        with torch.no_grad():
            wn.parametrizations.weight.original0.mul_(torch.rand_like(wn.weight[:, :1, :1]) + 0.5)
        state = {k: v.detach() for k, v in wn.state_dict().items()}
        folded = _fold_weight_norm(state, "test")
        assert set(folded) == {"weight", "bias"}
        # g * v / ||v|| folded in float64 then rounded, against torch's float32: a norm of <= 96
        # terms and a product, a few u (6e-8) relative; atol for weights near 0
        torch.testing.assert_close(folded["weight"], wn.weight.detach(), rtol=1e-6, atol=1e-7)


def test_truncated_file_raises(kit_checkpoints, tmp_path):
    data = (kit_checkpoints / CKPT).read_bytes()
    (tmp_path / CKPT).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_hift(tmp_path / CKPT)


def test_missing_weight_norm_half_is_named(kit_checkpoints, tmp_path):
    state = read_checkpoint(kit_checkpoints / CKPT)
    del state["ups.1.weight_g"]
    torch.save(state, tmp_path / CKPT)
    with pytest.raises(CheckpointError, match=r"ups\.1\.weight_g"):
        load_hift(tmp_path / CKPT)


def test_missing_plain_key_is_named(kit_checkpoints, tmp_path):
    state = read_checkpoint(kit_checkpoints / CKPT)
    del state["resblocks.4.activations2.1.alpha"]
    torch.save(state, tmp_path / CKPT)
    with pytest.raises(CheckpointError, match=r"resblocks\.4\.activations2\.1\.alpha"):
        load_hift(tmp_path / CKPT)
