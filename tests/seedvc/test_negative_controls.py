"""Negative controls for the network stages' parity tolerances.

Each test applies one real mistake (the kind the kit README's quirks list warns about) and
asserts that the comparison with the kit fails at the tolerance the parity test uses, so those
tolerances are tight enough to see such a mistake. The front ends' controls are in
test_features.py, next to their per-element tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.seedvc.conftest import (
    ATOL_VOICED,
    DIT,
    RTOL_BLOCK,
    RTOL_DIT,
    RTOL_HIFT,
    RTOL_LR,
    assert_abs,
    assert_rel,
    rtol_style,
    standalone_prompt_frames,
)
from voicegui.engine.sola import Sola
from voicegui.voices.seedvc import hift as hift_module
from voicegui.voices.seedvc.campplus import load_campplus
from voicegui.voices.seedvc.cfm import load_dit_checkpoint
from voicegui.voices.seedvc.hift import load_hift


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _fails(actual, expected, rtol: float, name: str) -> None:
    with pytest.raises(AssertionError, match=name):
        assert_rel(actual, expected, rtol, name)


@pytest.fixture(scope="module")
def dit_models(kit_checkpoints):
    return load_dit_checkpoint(kit_checkpoints / DIT)


# ---------------------------------------------------------------- length regulator (RTOL_LR)


def test_length_regulator_off_by_one_frame(dit_models, kit_inputs, kit_expected):
    _, lr = dit_models
    n = int(kit_inputs["src_ylens"][0])
    with torch.inference_mode():
        # interpolated to one frame more, then cut back: the nearest-index map is shifted
        longer = lr(_t(kit_inputs["src_content"]), n + 1)[:, :n]
        # the content one frame late
        late = lr(_t(kit_inputs["src_content"][:, 1:]), n)
    _fails(longer.numpy(), kit_expected["src_cond"], RTOL_LR, "src_cond")
    _fails(late.numpy(), kit_expected["src_cond"], RTOL_LR, "src_cond")


# ---------------------------------------------------------------- CFM / DiT (RTOL_DIT)


@pytest.mark.parametrize("mistake", ["one step short", "cfg mix", "style of the raw fbank"])
def test_cfm_mistakes(dit_models, kit_checkpoints, kit_inputs, kit_expected, mistake):
    cfm, _ = dit_models
    E = kit_expected
    mu = _t(np.concatenate([E["ref_cond"], E["src_cond"]], axis=1))
    steps, cfg = 10, 0.7  # the kit's "s10_cfg07" run
    style = _t(E["ref_style"])
    if mistake == "one step short":
        steps -= 1
    elif mistake == "cfg mix":
        cfg = 0.6
    else:  # the speaker encoder fed the fbank without its mean normalisation
        campplus = load_campplus(kit_checkpoints / "campplus_cn_common.bin")
        with torch.inference_mode():
            style = campplus(_t(E["ref_fbank_raw"])[None])
    out = cfm.inference(
        mu, None, _t(E["ref_mel"]), style, steps, cfg, noise=_t(kit_inputs["cfm_noise"])
    )
    _fails(out.numpy(), E["cfm_out_s10_cfg07"], RTOL_DIT, "cfm_out")


def test_dit_velocity_with_time_off(dit_models, kit_inputs, kit_expected):
    """The first velocity at t = 1/steps instead of 0 (an off-by-one on the time grid)."""
    cfm, _ = dit_models
    E = kit_expected
    p = standalone_prompt_frames(E)
    mu = _t(np.concatenate([E["ref_cond"], E["src_cond"]], axis=1))
    x = _t(kit_inputs["cfm_noise"]).clone()
    x[..., :p] = 0
    prompt_x = torch.zeros_like(x)
    prompt_x[..., :p] = _t(E["ref_mel"])
    with torch.inference_mode():
        v = cfm.estimator(x, prompt_x, None, torch.full((1,), 0.25), _t(E["ref_style"]), mu)
    _fails(v.numpy(), E["cfm_first_velocity_s4_cfg0"], RTOL_DIT, "velocity")


# ---------------------------------------------------------------- HiFT (RTOL_HIFT, ATOL_VOICED)


@pytest.fixture(scope="module")
def hift(kit_checkpoints):
    return load_hift(kit_checkpoints / "hift.pt")


def test_hift_final_slope_0_1(hift, kit_inputs, kit_expected, monkeypatch):
    """The last leaky ReLU uses torch's default slope 0.01, not the resblocks' 0.1."""
    real = F.leaky_relu

    def wrong(x, negative_slope=0.01, *a, **k):
        return real(x, 0.1 if negative_slope == 0.01 else negative_slope, *a, **k)

    monkeypatch.setattr(hift_module.F, "leaky_relu", wrong)
    mel = _t(kit_expected["cfm_out_s10_cfg07"][:, :, standalone_prompt_frames(kit_expected) :])
    with torch.inference_mode():
        wav = hift(mel, phase=_t(kit_inputs["hift_phase"]), noise=_t(kit_inputs["hift_noise"]))
    _fails(wav.numpy(), kit_expected["hift_wav"], RTOL_HIFT, "hift_wav")


def test_hift_phase_summed_in_float32(hift, kit_inputs, kit_expected, monkeypatch):
    """The hazard the 1e-3 absolute tolerance of the voiced path guards: a float32 running sum
    of the phase increments (instead of float64 partial sums rounded to float32)."""
    real = torch.cumsum

    def float32_running_sum(x, dim, *a, **k):
        if x.dtype != torch.float64:
            return real(x, dim, *a, **k)
        y = np.cumsum(x.float().numpy(), axis=dim, dtype=np.float32)  # sequential float32
        return torch.from_numpy(y).double()

    monkeypatch.setattr(hift_module.torch, "cumsum", float32_running_sum)
    frames = kit_inputs["hift_f0x_f0"].shape[-1]
    start = standalone_prompt_frames(kit_expected)
    mel = _t(kit_expected["cfm_out_s10_cfg07"][:, :, start : start + frames])
    with torch.inference_mode():
        wav = hift(
            mel,
            f0=_t(kit_inputs["hift_f0x_f0"]),
            phase=_t(kit_inputs["hift_f0x_phase"]),
            noise=_t(kit_inputs["hift_f0x_noise"]),
        )
    with pytest.raises(AssertionError, match="hift_f0x_wav"):
        assert_abs(wav.numpy(), kit_expected["hift_f0x_wav"], ATOL_VOICED, "hift_f0x_wav")


# ---------------------------------------------------------------- CAMPPlus (rtol_style)


def test_style_from_fbank_one_frame_short(kit_checkpoints, kit_expected):
    campplus = load_campplus(kit_checkpoints / "campplus_cn_common.bin")
    fbank = _t(kit_expected["ref_fbank"])
    with torch.inference_mode():
        short = campplus(fbank[1:][None])  # snip_edges framing off by one frame
        not_normalised = campplus(_t(kit_expected["ref_fbank_raw"])[None])
    rtol = rtol_style(fbank.shape[0])
    _fails(short.numpy(), kit_expected["ref_style"], rtol, "ref_style")
    _fails(not_normalised.numpy(), kit_expected["ref_style"], rtol, "ref_style")


# ---------------------------------------------------------------- SOLA (RTOL_BLOCK)


def test_sola_offset_off_by_one(kit_expected, kit_geometry):
    """The splice one sample later than the correlation peak upstream found."""
    E, g = kit_expected, kit_geometry
    sola = Sola(block=g.block_frame, crossfade=g.sola_buffer, search=g.sola_search)
    infer = E["stream_b2_infer_wav"]
    start = int(E["stream_sola_offset"][1]) + 1
    out = infer[start : start + g.block_frame].copy()
    c = g.sola_buffer
    out[:c] = out[:c] * sola.fade_in + E["stream_b1_sola_buffer"] * sola.fade_out
    _fails(out, E["stream_b2_outdata"], RTOL_BLOCK, "stream_b2_outdata")


# ---------------------------------------------------------------- one real-time block (RTOL_BLOCK)


def test_block_drops_one_content_frame_too_many(
    dit_models, hift, kit_checkpoints, kit_inputs, kit_expected, kit_geometry
):
    from dataclasses import replace

    from voicegui.voices.seedvc.model import SeedVCModel

    I, g = kit_inputs, kit_geometry
    cfm, lr = dit_models
    campplus = load_campplus(kit_checkpoints / "campplus_cn_common.bin")
    model = SeedVCModel(cfm, lr, hift, campplus, None, torch.device("cpu"))
    prompt = model.make_prompt(
        I["ref_wav_22k"],
        g.max_prompt,
        prompt_content=_t(I["e2e_prompt_content"]),
        style_from_prompt=True,
    )
    plan = g.plan()
    wrong = replace(plan, drop_frames=plan.drop_frames + 1)
    out = model.infer_block(
        None,
        prompt,
        wrong,
        g.steps,
        g.cfg,
        content=_t(I["e2e_window_content"]),
        cfm_noise=_t(I["e2e_cfm_noise"]),
        hift_phase=_t(I["e2e_hift_phase"]),
        hift_noise=_t(I["e2e_hift_noise"]),
    )
    _fails(out.numpy(), kit_expected["e2e_output"], RTOL_BLOCK, "e2e_output")
