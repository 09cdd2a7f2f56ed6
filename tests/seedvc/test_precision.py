"""The torch backend's precisions: what 'auto' picks, and how far bf16 strays from fp32.

Bounds. bf16 keeps 8 significant bits: rounding to nearest errs by at most u = 2^-9 relative,
uniformly spread, so u/sqrt(3) RMS per rounding. A stage that rounds N times (each stored
activation or weight on its path) with unit gain has a relative RMS error of about
u*sqrt(N/3); random-weight layers amplify it (layer norms divide by small variances, softmax
multiplies logit errors by the logits), which AMP = 4 allows. So each stage must reach
SNR >= -20 log10(AMP * u * sqrt(N/3)) against fp32, with N counted per stage below. CFG
extrapolates two velocities ((1+c) v_c - c v_u): uncorrelated errors grow by
sqrt((1+c)^2 + c^2) (1.84 at c = 0.7), included for the CFM.

bf16 works on any CPU (torch emulates it where the CPU lacks it), so these tests hold
everywhere; only the speed claim needs native bf16, and no test makes one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import DIT
from voicegui.voices import precision as P
from voicegui.voices.seedvc.model import SeedVCModel, plan_block

U = 2.0**-9  # bf16 unit roundoff
AMP = 4.0
CFG = 0.7
CFG_GAIN = math.sqrt((1 + CFG) ** 2 + CFG**2)
# Rounding points per stage (each stored bf16 tensor on the signal's path):
N_ROUNDINGS = {
    # tiny XLS-R: input, 7 x (conv, norm, gelu), projection (norm, linear), positional conv
    # (conv, add), 2 layers x (norm, q, k, v, softmax, attention out, add, norm, ff1, gelu,
    # ff2, add), final norm
    "content": 1 + 21 + 2 + 2 + 2 * 12 + 1,
    # the DiT (one velocity): 9 blocks x (norm, qkv, attention, wo, add, norm, w1, w3,
    # product, w2, add), in, out
    "cfm": 9 * 11 + 4,
    # conv_pre; 3 stages x (leaky, up, source down, 3 source-resblock convs x 2, add,
    # 3 resblocks x 3 dilations x 2 convs, mean); conv_post
    "vocoder": 1 + 3 * (1 + 1 + 1 + 6 + 1 + 18 + 1) + 1,
}


def bound_db(stage: str, gain: float = 1.0) -> float:
    rel = AMP * gain * U * math.sqrt(N_ROUNDINGS[stage] / 3)
    return -20 * math.log10(rel)


# the block chains the stages: its error is at most about the sum of theirs (in power); the
# CFM's is at most its velocities' after CFG (see _cfm_bounds)
BLOCK_BOUND_DB = -10 * math.log10(
    sum(10 ** (-bound_db(s, CFG_GAIN if s == "cfm" else 1.0) / 10) for s in N_ROUNDINGS)
)


def test_auto_picks_by_what_the_cpu_computes(monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: (True, "test"))
    assert P.resolve("auto", "cpu") == "bf16"
    monkeypatch.setattr(P, "native_bf16", lambda: (False, "test"))
    assert P.resolve("auto", "cpu") == "fp32"
    assert P.resolve("auto", "cuda") == "fp16"
    assert P.resolve("int8", "cpu") == "int8"
    with pytest.raises(ValueError):
        P.resolve("fp8", "cpu")


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    ok, why = P.native_bf16()
    assert ok == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and "AVX512-BF16" in why
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx2", "fma"})
    assert P.native_bf16()[0] is False


@pytest.fixture(scope="module")
def models(kit_checkpoints, tiny_xlsr):
    files = dict(
        dit=kit_checkpoints / DIT,
        hift=kit_checkpoints / "hift.pt",
        campplus=kit_checkpoints / "campplus_cn_common.bin",
        content_dir=tiny_xlsr,
        device="cpu",
    )
    return {p: SeedVCModel.load(**files, precision=p) for p in ("fp32", "bf16", "int8")}


@pytest.fixture(scope="module")
def inputs(kit_inputs):
    ref = kit_inputs["ref_wav_22k"]
    window = np.tile(kit_inputs["stream_in_22k"], 8)[: 22050 + 2 * 5292]
    return window, ref, plan_block(1.0, 0.5, 5292, 441)


def _snrs(models, name, inputs, steps=4):
    window, ref, plan = inputs
    return P.stage_snrs(models["fp32"], models[name], window, ref, plan, steps, CFG)


def test_bf16_model_is_built_as_described(models):
    m = models["bf16"]
    assert m.provider == "CPU (torch, bf16)"
    assert m.cfm.estimator.cond_x_merge_linear.weight.dtype == torch.bfloat16
    assert next(m.content.parameters()).dtype == torch.bfloat16
    assert m.vocoder.conv_pre.weight.dtype == torch.bfloat16
    assert m.vocoder.f0_predictor.condnet[0].weight.dtype == torch.float32  # phase path
    assert models["int8"].provider == "CPU (torch, int8)"


def _cfm(cfm, fp32, kit_inputs):
    """The kit's real-time block CFM (10 steps, CFG 0.7): output mel and first velocities."""
    I = kit_inputs
    prompt = fp32.make_prompt(
        I["ref_wav_22k"], 3.0, prompt_content=torch.from_numpy(I["e2e_prompt_content"])
    )
    cond = fp32.regulator(torch.from_numpy(I["e2e_window_content"])[:, 100:], 65)
    mu = torch.cat([prompt.cond, cond], 1)
    noise = torch.from_numpy(I["e2e_cfm_noise"])
    with torch.inference_mode():
        x, v = cfm.inference(
            mu, None, prompt.mel, prompt.style, 10, CFG, noise=noise, return_first_velocity=True
        )
    p = prompt.mel.shape[-1]
    return x[..., p:].float().numpy(), v.float().numpy()


def _cfm_bounds(ref_x, ref_v) -> tuple[float, float]:
    """(velocity, output) SNR bounds. The velocity is the DiT's output (N roundings). The
    output is x0 + sum dt*v with a float32 state: its error is at most sum dt*|err v| =
    |err v| (dt sums to 1), i.e. the velocity's relative error scaled by |v| / |x1|, measured
    here on the fp32 run."""
    v_db = bound_db("cfm")
    scale = float(np.sqrt(np.mean(ref_v.astype(np.float64) ** 2) / np.mean(ref_x**2.0)))
    return v_db, v_db - 20 * math.log10(CFG_GAIN * scale)


def test_bf16_snr_per_stage_and_block(models, inputs, kit_inputs):
    snr = _snrs(models, "bf16", inputs)
    assert snr["content"] >= bound_db("content"), snr
    assert snr["vocoder"] >= bound_db("vocoder"), snr
    assert snr["block"] >= BLOCK_BOUND_DB, snr
    ref_x, ref_v = _cfm(models["fp32"].cfm, models["fp32"], kit_inputs)
    x, v = _cfm(models["bf16"].cfm, models["fp32"], kit_inputs)
    v_db, x_db = _cfm_bounds(ref_x, ref_v)
    assert P.snr_db(v, ref_v) >= v_db and P.snr_db(x, ref_x) >= x_db


def test_int8_block_snr(models, inputs):
    # int8 (dynamic, per-tensor): 2^-8 of the largest |value| per tensor instead of per value,
    # so no bf16-style bound; the block must still be a close copy of fp32 (measured ~43 dB on
    # the full-size model, ~30 dB = 3 % error is where artefacts become audible)
    assert _snrs(models, "int8", inputs)["block"] >= 30


def test_negative_control_a_coarser_format_fails_the_bounds(models, inputs, kit_inputs):
    """The bounds catch real mistakes: DiT weights stored in fp8 (3 mantissa bits, 32x bf16's
    rounding) and the vocoder's phase path run in bf16."""
    import copy

    bad = copy.deepcopy(models["bf16"].cfm)
    with torch.no_grad():
        for prm in bad.estimator.transformer.parameters():
            prm.copy_(prm.to(torch.float8_e4m3fn).to(prm.dtype))
    ref_x, ref_v = _cfm(models["fp32"].cfm, models["fp32"], kit_inputs)
    x, v = _cfm(bad, models["fp32"], kit_inputs)
    v_db, x_db = _cfm_bounds(ref_x, ref_v)
    assert P.snr_db(v, ref_v) < v_db

    voc = models["fp32"].vocoder
    with torch.no_grad():
        mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(1))
        f0 = torch.full((1, 40), 220.0)
        phase = torch.zeros(1, 9, 1)
        noise = torch.randn(1, 9, 40 * 256, generator=torch.Generator().manual_seed(2))
        good = voc.decode(mel, voc.source(f0, phase, noise))
        f0_up = f0.repeat_interleave(256, dim=-1)
        src16 = copy.deepcopy(voc.m_source).bfloat16()  # its running phase rounded to bf16
        src16 = src16(f0_up.bfloat16(), phase.bfloat16(), noise.bfloat16()).float()
        wrong = voc.decode(mel, src16)
    assert P.snr_db(wrong.numpy(), good.numpy()) < bound_db("vocoder")


def test_settings_carry_the_torch_precision_to_the_voice(kit_checkpoints, tiny_xlsr):
    from voicegui.settings import Settings, SettingsError, VoiceSettings, with_changes
    from voicegui.voices.seedvc.voice import build_seedvc_voice

    with_changes(Settings(), voice={"precision": "bf16"}).validated()
    with pytest.raises(SettingsError):
        with_changes(Settings(), voice={"precision": "fp8"}).validated()
    files = dict(
        dit=kit_checkpoints / DIT,
        hift=kit_checkpoints / "hift.pt",
        campplus=kit_checkpoints / "campplus_cn_common.bin",
        content_dir=tiny_xlsr,
    )
    settings = VoiceSettings(voice="seedvc", backend="torch", precision="bf16", device="cpu")
    voice = build_seedvc_voice(files, settings)
    assert voice.provider == "CPU (torch, bf16)" and voice.speech_detector is not None
