"""A full real-time block and the streaming voice through onnxruntime, against torch and the kit.

Measured on the kit (random weights), block output SNR against torch fp32: ORT fp32 ~120 dB,
ORT int8 (DiT + content encoder) ~47 dB; the assertions keep margins below those.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.onnx.conftest import snr_db
from tests.seedvc.conftest import RTOL_BLOCK, STREAM, assert_rel
from voicegui.engine.offline import run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings, with_changes
from voicegui.voices.seedvc.voice import SeedVCVoice


def _block(model, kit_inputs, g, steps=None, cfg=None, **kw):
    """One block at the kit's settings (upstream's GUI), upstream's prompt and style."""
    I = kit_inputs
    steps = g.steps if steps is None else steps
    cfg = g.cfg if cfg is None else cfg
    content = torch.from_numpy(I["e2e_prompt_content"])
    prompt = model.make_prompt(
        I["ref_wav_22k"], g.max_prompt, prompt_content=content, style_from_prompt=True
    )
    args = dict(
        content=torch.from_numpy(I["e2e_window_content"]),
        cfm_noise=torch.from_numpy(I["e2e_cfm_noise"]),
        hift_phase=torch.from_numpy(I["e2e_hift_phase"]),
        hift_noise=torch.from_numpy(I["e2e_hift_noise"]),
    )
    args.update(kw)
    return model.infer_block(None, prompt, g.plan(), steps, cfg, **args).numpy()


@pytest.fixture(scope="module")
def torch_block(torch_model, kit_inputs, kit_geometry):
    return _block(torch_model, kit_inputs, kit_geometry)


def test_fp32_block_matches_upstream_and_torch(
    ort_fp32, torch_block, kit_inputs, kit_expected, kit_geometry
):
    out = _block(ort_fp32, kit_inputs, kit_geometry)
    assert out.shape == (kit_geometry.out_samples,)
    assert_rel(out, kit_expected["e2e_output"], RTOL_BLOCK, "e2e_output")
    # a floor only (the parity above is the check): fp32 differs from torch by rounding, >70 dB
    assert snr_db(out, torch_block) >= 30


def test_int8_block_snr(ort_int8, torch_block, kit_inputs, kit_geometry):
    out = _block(ort_int8, kit_inputs, kit_geometry)
    snr = snr_db(out, torch_block)
    assert ort_int8.provider.startswith("CPU (onnxruntime, int8")
    # 8-bit weights: 6.02 * 8 + 1.76 = 50 dB per tensor for a full-scale uniform signal, less
    # the weights' crest factor (~10 dB) and ~10 dB for errors adding over the layers: ~30 dB
    assert snr >= 30, f"int8 block SNR {snr:.1f} dB"


def test_trimmed_vocoder_block(ort_fp32, torch_model, kit_inputs, kit_geometry):
    plan = kit_geometry.plan()
    frames = ort_fp32.vocoder_frames_for(plan)
    assert frames == torch_model.vocoder_frames_for(plan)
    ref = _block(torch_model, kit_inputs, kit_geometry, 2, 0.0, vocoder_frames=frames)
    out = _block(ort_fp32, kit_inputs, kit_geometry, 2, 0.0, vocoder_frames=frames)
    # the same trimmed block on both backends: float32 rounding only (RTOL_BLOCK ~ -74 dB)
    assert snr_db(out, ref) >= 60


def _stream(voice, x):
    voice.reset()
    settings = with_changes(
        Settings(),
        engine=STREAM,
        voice={"voice": "seedvc", "diffusion_steps": 2, "cfg_rate": 0.5, "max_prompt_time": 1.0},
    )
    proc = BlockProcessor(voice, settings, 22050)
    y = run_blocks(proc, x)
    assert proc.voice_errors == 0, proc.last_error
    return y, proc


def test_streaming_voice_same_as_torch(ort_fp32, torch_model, kit_inputs):
    """SeedVCVoice wraps either model: content encoder on, seeded noise, engine framing."""
    ref_clip = kit_inputs["ref_wav_22k"][:22050]
    x = np.tile(kit_inputs["stream_in_22k"], 2)[:12000]
    outs = {}
    for name, model in (("torch", torch_model), ("onnx", ort_fp32)):
        voice = SeedVCVoice(model, vad=False)
        voice.prepare(ref_clip, 22050)
        y, proc = _stream(voice, x)
        assert np.all(np.isfinite(y)) and np.abs(y[proc.block_dev * 2 :]).max() > 0
        outs[name] = y
        if name == "onnx":
            assert voice.provider == "CPU (onnxruntime, fp32)"
            stages = voice.profile()
            assert {"content", "length_regulator", "cfm", "vocoder"} <= set(stages)
    # a floor only: the streams' parity is what the block tests check
    assert snr_db(outs["onnx"], outs["torch"]) >= 30


def test_reset_repeats_the_noise(ort_fp32, kit_inputs):
    voice = SeedVCVoice(ort_fp32, vad=False)
    voice.prepare(kit_inputs["ref_wav_22k"][:22050], 22050)
    x = np.tile(kit_inputs["stream_in_22k"], 2)[:8000]
    a, _ = _stream(voice, x)
    b, _ = _stream(voice, x)
    np.testing.assert_array_equal(a, b)
