"""One full real-time block, SOLA, and the streaming Seed-VC voice through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import DIT, STREAM, assert_rel
from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.engine.sola import Sola, best_offset
from voicegui.settings import Settings, with_changes
from voicegui.voices.seedvc.campplus import load_campplus
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
    plan = plan_block(left_s=2.5, dit_left_s=0.5, out_samples=5292, right_samples=441)
    assert (plan.drop_frames, plan.mel_frames) == (100, 65)


def test_one_full_realtime_block_matches_upstream(kit_model, kit_inputs, kit_expected):
    I, E = kit_inputs, kit_expected
    prompt = kit_model.make_prompt(
        I["ref_wav_22k"], 3.0, prompt_content=torch.from_numpy(I["e2e_prompt_content"])
    )
    assert_rel(prompt.mel, E["e2e_prompt_mel"], 1e-4, "e2e_prompt_mel")
    assert_rel(prompt.style, E["e2e_style"], 1e-5, "e2e_style")
    assert_rel(prompt.cond, E["e2e_prompt_cond"], 1e-4, "e2e_prompt_cond")
    plan = plan_block(2.5, 0.5, 5292, 441)
    out = kit_model.infer_block(
        None,
        prompt,
        plan,
        10,
        0.7,
        content=torch.from_numpy(I["e2e_window_content"]),
        cfm_noise=torch.from_numpy(I["e2e_cfm_noise"]),
        hift_phase=torch.from_numpy(I["e2e_hift_phase"]),
        hift_noise=torch.from_numpy(I["e2e_hift_noise"]),
    )
    assert_rel(out, E["e2e_output"], 1e-4, "e2e_output")
    # the streaming block 1 of upstream is this same block
    assert_rel(out, E["stream_b1_infer_wav"], 1e-4, "stream_b1_infer_wav")


def test_trimmed_vocoder_emits_the_same_block(kit_model, kit_inputs):
    """Vocoding only the frames the block needs (+ margin) instead of all 65."""
    I = kit_inputs
    prompt = kit_model.make_prompt(
        I["ref_wav_22k"], 3.0, prompt_content=torch.from_numpy(I["e2e_prompt_content"])
    )
    plan = plan_block(2.5, 0.5, 5292, 441)
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
    assert snr > 40, snr


def test_sola_matches_upstream_streaming(kit_expected):
    E = kit_expected
    sola = Sola(block=3969, crossfade=882, search=441)
    np.testing.assert_allclose(sola.fade_in, E["stream_fade_in_window"], atol=1e-6)
    # block 2 against the tail upstream kept from block 1
    sola.tail[:] = E["stream_b1_sola_buffer"]
    sola.has_tail = True
    infer = E["stream_b2_infer_wav"]
    assert best_offset(infer, sola.tail, 441) == int(E["stream_sola_offset"][1])
    out = sola.splice(infer)
    assert_rel(out, E["stream_b2_outdata"], 1e-4, "stream_b2_outdata")
    assert_rel(sola.tail, E["stream_b2_sola_buffer"], 1e-4, "stream_b2_sola_buffer")


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
        assert np.abs(got[2] - ref[2]).max() > 1e-6  # the very next block differs
    assert streaming_voice.cfg == 0.0 and streaming_voice.steps == 2
