"""Parity of the Seed-VC length regulator, DiT and CFM solver with the upstream fixture kit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import RTOL_DIT, RTOL_LR, assert_rel, standalone_prompt_frames
from voicegui.voices.seedvc.cfm import CFM, load_dit_checkpoint
from voicegui.voices.seedvc.checkpoints import CheckpointError, read_checkpoint
from voicegui.voices.seedvc.dit import DiT, timestep_freqs
from voicegui.voices.seedvc.length_regulator import InterpolateRegulator

DIT_FILE = "dit_uvit_tat_xlsr_tiny_random.pth"


@pytest.fixture(scope="module")
def dit_models(kit_checkpoints: Path) -> tuple[CFM, InterpolateRegulator]:
    return load_dit_checkpoint(kit_checkpoints / DIT_FILE)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------- length regulator


@pytest.mark.parametrize("name", ["src", "ref"])
def test_length_regulator(dit_models, kit_inputs, kit_expected, name):
    _, lr = dit_models
    with torch.inference_mode():
        out = lr(_t(kit_inputs[f"{name}_content"]), _t(kit_inputs[f"{name}_ylens"]))
    assert_rel(out.numpy(), kit_expected[f"{name}_cond"], RTOL_LR, f"{name}_cond")


def test_length_regulator_realtime(dit_models, kit_inputs, kit_expected, kit_geometry):
    _, lr = dit_models
    prompt_frames = kit_expected["e2e_prompt_mel"].shape[-1]
    plan = kit_geometry.plan()  # content frames dropped, mel frames of the block
    with torch.inference_mode():
        prompt = lr(_t(kit_inputs["e2e_prompt_content"]), prompt_frames)
        cond = lr(_t(kit_inputs["e2e_window_content"][:, plan.drop_frames :]), plan.mel_frames)
    assert_rel(prompt.numpy(), kit_expected["e2e_prompt_cond"], RTOL_LR, "e2e_prompt_cond")
    assert_rel(cond.numpy(), kit_expected["e2e_cond"], RTOL_LR, "e2e_cond")


def test_length_regulator_masks_short_rows(dit_models, kit_inputs):
    _, lr = dit_models
    x = _t(kit_inputs["src_content"][:, :40]).repeat(2, 1, 1)
    with torch.inference_mode():
        out = lr(x, torch.tensor([60, 45]))
    assert out.shape == (2, 60, 384)
    assert torch.all(out[1, 45:] == 0) and torch.any(out[1, :45] != 0)


# ---------------------------------------------------------------- CFM


# the kit's two standalone runs: the tag in the array names spells out steps and CFG
@pytest.mark.parametrize(("steps", "cfg", "tag"), [(4, 0.0, "s4_cfg0"), (10, 0.7, "s10_cfg07")])
def test_cfm_standalone(dit_models, kit_inputs, kit_expected, steps, cfg, tag):
    cfm, _ = dit_models
    mu = _t(np.concatenate([kit_expected["ref_cond"], kit_expected["src_cond"]], axis=1))
    out, first = cfm.inference(
        mu,
        None,
        _t(kit_expected["ref_mel"]),
        _t(kit_expected["ref_style"]),
        steps,
        cfg,
        noise=_t(kit_inputs["cfm_noise"]),
        return_first_velocity=True,
    )
    assert_rel(out.numpy(), kit_expected[f"cfm_out_{tag}"], RTOL_DIT, f"cfm_out_{tag}")
    assert_rel(first.numpy(), kit_expected[f"cfm_first_velocity_{tag}"], RTOL_DIT, f"first_{tag}")
    assert torch.all(out[..., : standalone_prompt_frames(kit_expected)] == 0)


def test_cfm_realtime_block(dit_models, kit_inputs, kit_expected, kit_geometry):
    cfm, _ = dit_models
    g = kit_geometry
    mu = _t(np.concatenate([kit_expected["e2e_prompt_cond"], kit_expected["e2e_cond"]], axis=1))
    out, first = cfm.inference(
        mu,
        None,
        _t(kit_expected["e2e_prompt_mel"]),
        _t(kit_expected["e2e_style"]),
        g.steps,
        g.cfg,
        noise=_t(kit_inputs["e2e_cfm_noise"]),
        return_first_velocity=True,
    )
    assert_rel(out.numpy(), kit_expected["e2e_cfm_out"], RTOL_DIT, "e2e_cfm_out")
    assert_rel(first.numpy(), kit_expected["e2e_first_velocity"], RTOL_DIT, "e2e_first_velocity")


def test_dit_forward_matches_first_velocity(dit_models, kit_inputs, kit_expected):
    """The plain one-call estimator (no per-solve split, no pruning) gives the same velocity."""
    cfm, _ = dit_models
    prompt = _t(kit_expected["ref_mel"])
    p = prompt.shape[-1]
    mu = _t(np.concatenate([kit_expected["ref_cond"], kit_expected["src_cond"]], axis=1))
    x = _t(kit_inputs["cfm_noise"]).clone()
    x[..., :p] = 0
    prompt_x = torch.zeros_like(x)
    prompt_x[..., :p] = prompt
    with torch.inference_mode():
        v = cfm.estimator(x, prompt_x, None, torch.zeros(1), _t(kit_expected["ref_style"]), mu)
    assert_rel(v.numpy(), kit_expected["cfm_first_velocity_s4_cfg0"], RTOL_DIT, "dit forward")


def test_dit_padded_batch_matches_single(dit_models, kit_inputs, kit_expected):
    """A shorter row in a padded batch sees only its own frames (key mask on x_lens + 2)."""
    est = dit_models[0].estimator
    g = torch.Generator().manual_seed(1)
    t_full, t_short = 30, 22
    x = torch.randn(2, 80, t_full, generator=g)
    prompt_x = torch.randn(2, 80, t_full, generator=g)
    cond = torch.randn(2, t_full, 384, generator=g)
    style = _t(kit_expected["ref_style"]).repeat(2, 1)
    t = torch.tensor([0.3, 0.3])
    with torch.inference_mode():
        both = est(x, prompt_x, torch.tensor([t_full, t_short]), t, style, cond)
        single = est(
            x[1:, :, :t_short],
            prompt_x[1:, :, :t_short],
            None,
            t[1:],
            style[1:],
            cond[1:, :t_short],
        )
    # the same velocity summed in other orders (another batch shape); a masking mistake is O(1)
    assert_rel(both[1:, :, :t_short].numpy(), single.numpy(), RTOL_DIT, "padded row")


def test_cfm_default_noise_is_seeded_and_advances(dit_models, kit_expected):
    est = dit_models[0].estimator
    mu = _t(kit_expected["src_cond"][:, :24])
    prompt = _t(kit_expected["ref_mel"][..., :8])
    style = _t(kit_expected["ref_style"])
    a, b = CFM(est, seed=3), CFM(est, seed=3)
    first = a.inference(mu, None, prompt, style, 2, 0.7)
    assert torch.equal(first, b.inference(mu, None, prompt, style, 2, 0.7))
    assert not torch.equal(first, a.inference(mu, None, prompt, style, 2, 0.7))


def test_timestep_freqs_match_stored_constant(dit_models):
    stored = dit_models[0].estimator.t_embedder.freqs
    assert torch.equal(timestep_freqs(stored.numel()), stored)


# ---------------------------------------------------------------- checkpoint handling


@pytest.fixture(scope="module")
def dit_state(kit_checkpoints: Path) -> dict:
    return read_checkpoint(kit_checkpoints / DIT_FILE)


def _save_variant(dit_state: dict, path: Path, edit) -> Path:
    net = {name: dict(sd) for name, sd in dit_state["net"].items()}
    obj = {"net": net}
    edit(obj)
    torch.save(obj, path)
    return path


def test_missing_key_is_named(dit_state, tmp_path):
    key = "estimator.transformer.layers.3.feed_forward.w2.weight"
    path = _save_variant(dit_state, tmp_path / "missing.pth", lambda o: o["net"]["cfm"].pop(key))
    with pytest.raises(CheckpointError, match=r"missing keys: .*layers\.3\.feed_forward\.w2"):
        load_dit_checkpoint(path)


def test_wrong_shape_is_named(dit_state, tmp_path):
    key = "content_in_proj.weight"

    def edit(o):
        o["net"]["length_regulator"][key] = torch.zeros(384, 768)

    path = _save_variant(dit_state, tmp_path / "shape.pth", edit)
    with pytest.raises(CheckpointError, match=r"wrong shapes: content_in_proj\.weight"):
        load_dit_checkpoint(path)


def test_truncated_file_raises(kit_checkpoints, tmp_path):
    data = (kit_checkpoints / DIT_FILE).read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_dit_checkpoint(path)


def test_other_input_pos_length_loads(dit_state, tmp_path, kit_inputs, kit_expected):
    def edit(o):
        o["net"]["cfm"]["estimator.input_pos"] = torch.arange(4096)

    cfm, lr = load_dit_checkpoint(_save_variant(dit_state, tmp_path / "pos.pth", edit))
    with torch.inference_mode():
        out = lr(_t(kit_inputs["src_content"]), _t(kit_inputs["src_ylens"]))
    assert_rel(out.numpy(), kit_expected["src_cond"], RTOL_LR, "src_cond after pos-4096 load")
    ref = dit_state["net"]["cfm"]["estimator.cond_x_merge_linear.weight"]
    assert torch.equal(cfm.estimator.cond_x_merge_linear.weight, ref)


def test_training_state_beside_net_is_ignored(dit_state, tmp_path):
    def edit(o):
        o["optimizer"] = {"state": {}, "param_groups": [{"lr": 1e-4}]}
        o["scheduler"] = {"last_epoch": 3}
        o["epoch"] = 7
        o["iters"] = 12345

    cfm, lr = load_dit_checkpoint(_save_variant(dit_state, tmp_path / "train.pth", edit))
    assert isinstance(cfm.estimator, DiT) and isinstance(lr, InterpolateRegulator)
    assert not cfm.training and not lr.training
