"""One full real-time block, SOLA, and the streaming Seed-VC voice through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import (
    DIT,
    RTOL_BLOCK,
    RTOL_LR,
    STREAM,
    assert_rel,
    fbank_frames,
    rtol_style,
)
from tests.seedvc.rounding import assert_within, mel_tolerance
from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.engine.sola import Sola, best_offset
from voicegui.settings import Settings, with_changes
from voicegui.voices.seedvc.campplus import load_campplus, style_vector
from voicegui.voices.seedvc.cfm import load_dit_checkpoint
from voicegui.voices.seedvc.hift import load_hift
from voicegui.voices.seedvc.model import SeedVCModel, plan_block
from voicegui.voices.seedvc.voice import SeedVCVoice


@pytest.fixture(scope="module")
def kit_model(kit_checkpoints):
    torch.set_num_threads(2)
    cfm, lr = load_dit_checkpoint(kit_checkpoints / DIT)
    return SeedVCModel(
        cfm,
        lr,
        load_hift(kit_checkpoints / "hift.pt"),
        load_campplus(kit_checkpoints / "campplus_cn_common.bin"),
        None,
        torch.device("cpu"),
    )


def test_upstream_block_plan():
    # upstream's GUI at its defaults (block 0.18 s, ...): the figures its own code derives
    plan = plan_block(left_s=2.5, dit_left_s=0.5, out_samples=5292, right_samples=441)
    assert (plan.drop_frames, plan.mel_frames) == (100, 65)


def _upstream_prompt(model, kit_inputs, geometry):
    """The prompt as upstream makes it: the style from the cropped prompt only."""
    I = kit_inputs
    return model.make_prompt(
        I["ref_wav_22k"],
        geometry.max_prompt,
        prompt_content=torch.from_numpy(I["e2e_prompt_content"]),
        style_from_prompt=True,
    )


def test_one_full_realtime_block_matches_upstream(
    kit_model, kit_inputs, kit_expected, kit_geometry
):
    I, E, g = kit_inputs, kit_expected, kit_geometry
    prompt = _upstream_prompt(kit_model, I, g)
    crop = I["ref_wav_22k"][: g.prompt_samples]
    assert_within(prompt.mel, E["e2e_prompt_mel"], mel_tolerance(crop), "e2e_prompt_mel")
    assert_rel(prompt.style, E["e2e_style"], rtol_style(fbank_frames(len(crop))), "e2e_style")
    assert_rel(prompt.cond, E["e2e_prompt_cond"], RTOL_LR, "e2e_prompt_cond")
    plan = g.plan()
    out = kit_model.infer_block(
        None,
        prompt,
        plan,
        g.steps,
        g.cfg,
        content=torch.from_numpy(I["e2e_window_content"]),
        cfm_noise=torch.from_numpy(I["e2e_cfm_noise"]),
        hift_phase=torch.from_numpy(I["e2e_hift_phase"]),
        hift_noise=torch.from_numpy(I["e2e_hift_noise"]),
    )
    assert_rel(out, E["e2e_output"], RTOL_BLOCK, "e2e_output")
    # the streaming block 1 of upstream is this same block
    assert_rel(out, E["stream_b1_infer_wav"], RTOL_BLOCK, "stream_b1_infer_wav")


def test_trimmed_vocoder_emits_the_same_block(kit_model, kit_inputs, kit_geometry):
    """Vocoding only the frames the block needs (+ margin) instead of all of the block's."""
    I = kit_inputs
    prompt = _upstream_prompt(kit_model, I, kit_geometry)
    plan = kit_geometry.plan()
    args = dict(
        content=torch.from_numpy(I["e2e_window_content"]),
        cfm_noise=torch.from_numpy(I["e2e_cfm_noise"]),
        hift_phase=torch.from_numpy(I["e2e_hift_phase"]),
        hift_noise=torch.from_numpy(I["e2e_hift_noise"]),
    )
    full = kit_model.infer_block(None, prompt, plan, 4, 0.0, **args).numpy()
    frames = kit_model.vocoder_frames_for(plan)
    assert frames < plan.mel_frames
    trimmed = kit_model.infer_block(
        None, prompt, plan, 4, 0.0, vocoder_frames=frames, **args
    ).numpy()
    snr = 10 * np.log10(np.sum(full**2) / np.sum((full - trimmed) ** 2))
    # not rounding: what the vocoder's receptive field beyond the margin still contributes;
    # a margin too small (or frames misaligned by one) falls far below
    assert snr > 40, snr


def test_sola_matches_upstream_streaming(kit_expected, kit_geometry):
    E, g = kit_expected, kit_geometry
    sola = Sola(block=g.block_frame, crossfade=g.sola_buffer, search=g.sola_search)
    # sin(pi/2 * t)^2 in float32 on both sides: a few roundings of values <= 1, each <= u = 6e-8
    np.testing.assert_allclose(sola.fade_in, E["stream_fade_in_window"], atol=16 * 2.0**-24)
    # block 2 against the tail upstream kept from block 1
    sola.tail[:] = E["stream_b1_sola_buffer"]
    sola.has_tail = True
    infer = E["stream_b2_infer_wav"]
    assert best_offset(infer, sola.tail, g.sola_search) == int(E["stream_sola_offset"][1])
    out = sola.splice(infer)
    # the kit's own block in, a crossfade (weights <= 1) out: a few u, well inside the block's
    # tolerance, which is what the same splice of our own blocks needs
    assert_rel(out, E["stream_b2_outdata"], RTOL_BLOCK, "stream_b2_outdata")
    assert_rel(sola.tail, E["stream_b2_sola_buffer"], RTOL_BLOCK, "stream_b2_sola_buffer")


@pytest.fixture(scope="module")
def streaming_voice(kit_checkpoints, tiny_xlsr, kit_inputs):
    """The real loaders on the kit's checkpoints plus a tiny random XLS-R (1024-d output)."""
    model = SeedVCModel.load(
        kit_checkpoints / DIT,
        kit_checkpoints / "hift.pt",
        kit_checkpoints / "campplus_cn_common.bin",
        tiny_xlsr,
        device="cpu",
    )
    voice = SeedVCVoice(model, vad=False)
    voice.prepare(kit_inputs["ref_wav_22k"][:22050], 22050)
    return voice


def test_streaming_voice_through_the_engine(streaming_voice, kit_inputs):
    src = kit_inputs["stream_in_22k"]
    x = np.tile(src, 3)[:22050]  # 1 s at the voice's own rate
    settings = with_changes(
        Settings(),
        engine=STREAM,
        voice={"voice": "seedvc", "diffusion_steps": 2, "cfg_rate": 0.5, "max_prompt_time": 1.0},
    )
    proc = BlockProcessor(streaming_voice, settings, 22050)
    y = run_blocks(proc, x)
    assert len(y) == len(x) and np.all(np.isfinite(y))
    assert proc.voice_errors == 0, proc.last_error
    assert np.abs(y[proc.block_dev * 2 :]).max() > 0  # the voice produced sound
    lat = proc.latency()
    # block + right context + crossfade + half the SOLA search; no resampler at 22.05 kHz
    assert lat.algorithmic == pytest.approx(0.1 + 0.02 + 0.02 + 0.005, abs=1e-3)
    stages = streaming_voice.profile()
    assert {"content", "length_regulator", "cfm", "vocoder"} <= set(stages)


def test_steps_and_cfg_changed_live_take_effect_on_the_next_block(streaming_voice, kit_inputs):
    x = np.tile(kit_inputs["stream_in_22k"], 2)[: 22050 * 4 // 10]  # 4 blocks
    base = with_changes(
        Settings(),
        engine=STREAM,
        voice={"voice": "seedvc", "diffusion_steps": 2, "cfg_rate": 0.5, "max_prompt_time": 1.0},
    )

    def run(change_at: int | None, change: dict) -> np.ndarray:
        streaming_voice.reset()
        proc = BlockProcessor(streaming_voice, base, 22050)
        b = proc.block_dev
        outs = []
        for i in range(len(x) // b):
            if i == change_at:
                proc.request(with_changes(base, voice=change))
            outs.append(proc.process(x[i * b : (i + 1) * b]))
        return np.stack(outs)

    ref = run(None, {})
    for change in ({"diffusion_steps": 3}, {"cfg_rate": 0.0}):
        got = run(2, change)
        np.testing.assert_array_equal(got[:2], ref[:2])  # same seed, same input: identical
        # the very next block differs, by far more than rounding (u * |y| <= 6e-8)
        assert np.abs(got[2] - ref[2]).max() > 1e-6
    assert streaming_voice.cfg == 0.0 and streaming_voice.steps == 2


def test_long_reference_upstream_style_and_whole_clip_style(
    kit_model, kit_inputs, kit_expected, kit_geometry
):
    """A reference longer than Max prompt: the prompt is its first Max prompt seconds either
    way; upstream's style (style_from_prompt) still matches the kit, the default one is the
    whole clip's and differs from it by design."""
    I, E, g = kit_inputs, kit_expected, kit_geometry
    n = min(len(I["ref_wav_22k"]), g.prompt_samples)  # what upstream's prompt used
    long = np.concatenate([I["ref_wav_22k"][:n], I["ref_wav_22k"][::-1]])  # + other speech
    max_s = (n + 0.5) / g.rate  # int(rate * max_s) == n
    content = torch.from_numpy(I["e2e_prompt_content"])
    upstream = kit_model.make_prompt(long, max_s, prompt_content=content, style_from_prompt=True)
    whole = kit_model.make_prompt(long, max_s, prompt_content=content)
    for p in (upstream, whole):
        assert_within(p.mel, E["e2e_prompt_mel"], mel_tolerance(long[:n]), "e2e_prompt_mel")
        assert_rel(p.cond, E["e2e_prompt_cond"], RTOL_LR, "e2e_prompt_cond")
    rtol = rtol_style(fbank_frames(n))
    assert_rel(upstream.style, E["e2e_style"], rtol, "e2e_style (style from the prompt)")
    with torch.inference_mode():
        want = style_vector(torch.from_numpy(long), kit_model.speaker)
    # same code, same input: identical up to the summation orders of the two calls
    assert_rel(whole.style, want, rtol_style(fbank_frames(len(long))), "style of the whole clip")
    with pytest.raises(AssertionError):
        assert_rel(whole.style, E["e2e_style"], rtol, "whole-clip style is not upstream's")


def test_style_setting_reaches_the_voice(streaming_voice):
    """style_from_prompt flows like max_prompt_time: settings -> voice_params -> the prompt."""
    from voicegui.engine.processor import voice_params

    v = streaming_voice  # prepared with a 1 s reference
    s = with_changes(Settings(), voice={"max_prompt_time": 1.0, "style_from_prompt": True})
    assert voice_params(s.voice, s.engine)["style_from_prompt"] is True
    try:
        v.update({"max_prompt_time": 0.5, "style_from_prompt": False})
        whole = v._prompt.style.clone()
        v.update({"style_from_prompt": True})
        cropped = v._prompt.style.clone()
        assert v.style_from_prompt and v._prompt_key[-1] is True
        # another clip, another style: far beyond rounding (rtol_style ~ 1e-5)
        assert (whole - cropped).abs().max() > 1e-3 * whole.abs().max()
    finally:
        v.update({"max_prompt_time": 1.0, "style_from_prompt": False})
