"""Each exported stage (ORT fp32, CPU) against the parity kit and the torch implementation.

Tolerances, max|diff| <= rtol * max|expected| (the kit's rule), are the named ones of
tests/seedvc/conftest.py, derived there from each stage's float32 summations (onnxruntime's
kernels sum in other orders, which is the same kind of difference); the log-mel has the
per-element bound of tests/seedvc/rounding.py. The SNR floors of the fp16 graphs are quality
floors of half precision, not parity tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.onnx.conftest import snr_db
from tests.seedvc.conftest import (
    ATOL_VOICED,
    RTOL_DIT,
    RTOL_HIFT,
    RTOL_LR,
    assert_abs,
    assert_rel,
    fbank_frames,
    rounding_rtol,
    rtol_style,
    standalone_prompt_frames,
)
from tests.seedvc.rounding import assert_within, mel_tolerance

# The tiny XLS-R of the tests (tests/seedvc/conftest.py TINY_XLSR): conv stack
# sqrt(10) + 4 sqrt(192) + 2 sqrt(128) ~ 81, projection sqrt(64), positional conv sqrt(1024),
# 2 layers x (4 sqrt(1024) + sqrt(64 head dim) + sqrt(~140 keys) + sqrt(1024) + sqrt(256))
RTOL_CONTENT = rounding_rtol(81 + 8 + 32 + 2 * (128 + 8 + 12 + 32 + 16))


@pytest.fixture(scope="module")
def prompt_frames(kit_expected) -> int:  # prompt frames of the standalone CFM / vocoder fixtures
    return standalone_prompt_frames(kit_expected)


def test_content_encoder_matches_torch(ort_fp32, torch_model, kit_inputs, kit_geometry):
    from voicegui.voices.seedvc.features import resample_22k_to_16k

    # the kit's real-time window and two odd lengths
    for n in (kit_geometry.window, 22050, 30001):
        wav = kit_inputs["ref_wav_22k"][:n]
        got = ort_fp32.content_features(wav)
        with torch.inference_mode():
            ref = torch_model.content(resample_22k_to_16k(torch.from_numpy(wav))[None]).numpy()
        assert_rel(got, ref, RTOL_CONTENT, f"content {n}")


@pytest.mark.parametrize("name", ["src", "ref"])
def test_length_regulator(ort_fp32, kit_inputs, kit_expected, name):
    out = ort_fp32.regulate(kit_inputs[f"{name}_content"], int(kit_inputs[f"{name}_ylens"][0]))
    assert_rel(out, kit_expected[f"{name}_cond"], RTOL_LR, f"{name}_cond")


def test_length_regulator_realtime_drop(ort_fp32, kit_inputs, kit_expected, kit_geometry):
    plan = kit_geometry.plan()
    out = ort_fp32.regulate(
        kit_inputs["e2e_window_content"], plan.mel_frames, drop=plan.drop_frames
    )
    assert_rel(out, kit_expected["e2e_cond"], RTOL_LR, "e2e_cond")


@pytest.mark.parametrize(("steps", "cfg", "tag"), [(4, 0.0, "s4_cfg0"), (10, 0.7, "s10_cfg07")])
def test_cfm_steps(ort_fp32, kit_inputs, kit_expected, prompt_frames, steps, cfg, tag):
    E = kit_expected
    out, first = ort_fp32.solve(
        E["ref_mel"],
        E["ref_cond"],
        E["ref_style"],
        E["src_cond"],
        steps,
        cfg,
        noise=kit_inputs["cfm_noise"],
        return_first_velocity=True,
    )
    v = E[f"cfm_first_velocity_{tag}"][..., prompt_frames:]
    mixed = v[:1] if cfg == 0 else (1 + cfg) * v[:1] - cfg * v[1:]
    assert_rel(first, mixed, RTOL_DIT, f"first velocity {tag}")
    assert_rel(out, E[f"cfm_out_{tag}"][..., prompt_frames:], RTOL_DIT, f"cfm_out_{tag}")


def test_vocoder(ort_fp32, kit_inputs, kit_expected, prompt_frames):
    mel = kit_expected["cfm_out_s10_cfg07"][..., prompt_frames:]
    wav = ort_fp32.vocode(mel, kit_inputs["hift_phase"], kit_inputs["hift_noise"])
    assert_rel(wav, kit_expected["hift_wav"][0], RTOL_HIFT, "hift_wav")


def test_vocoder_trimmed_matches_torch(
    ort_fp32, torch_model, kit_inputs, kit_expected, prompt_frames
):
    """Only the last frames (the real-time path): the noise length picks them inside the graph."""
    mel = kit_expected["cfm_out_s10_cfg07"][..., prompt_frames:]
    noise = kit_inputs["hift_noise"][..., -40 * 256 :]
    wav = ort_fp32.vocode(mel, kit_inputs["hift_phase"], noise, frames=40)
    with torch.inference_mode():
        ref = torch_model.vocoder(
            torch.from_numpy(np.ascontiguousarray(mel[..., -40:])),
            phase=torch.from_numpy(kit_inputs["hift_phase"]),
            noise=torch.from_numpy(np.ascontiguousarray(noise)),
        )[0].numpy()
    assert_rel(wav, ref, RTOL_HIFT, "trimmed vocoder")


def test_vocoder_voiced_path(kit_checkpoints, kit_inputs, kit_expected, prompt_frames, tmp_path):
    """The sine source (float64 phase accumulation) with an explicit f0, via a parity export."""
    import onnxruntime as ort

    from voicegui.voices.onnx.export import export_module
    from voicegui.voices.onnx.graphs import ExplicitF0VocoderGraph
    from voicegui.voices.seedvc.hift import load_hift

    graph = ExplicitF0VocoderGraph(load_hift(kit_checkpoints / "hift.pt"))
    export_module(graph, "vocoder_f0", tmp_path / "v.onnx")
    sess = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"])
    I = kit_inputs
    frames = I["hift_f0x_f0"].shape[-1]
    mel = kit_expected["cfm_out_s10_cfg07"][..., prompt_frames : prompt_frames + frames]
    feeds = {
        "mel": np.ascontiguousarray(mel),
        "phase": I["hift_f0x_phase"],
        "noise": I["hift_f0x_noise"],
        "f0": I["hift_f0x_f0"],
    }
    wav = sess.run(None, feeds)[0]
    assert_abs(wav, kit_expected["hift_f0x_wav"], ATOL_VOICED, "hift_f0x_wav")


def test_campplus_style(ort_fp32, kit_inputs, kit_expected):
    from voicegui.voices.seedvc.features import kaldi_fbank, mean_normalise, resample_22k_to_16k

    ref = torch.from_numpy(kit_inputs["ref_wav_22k"])
    fbank = mean_normalise(kaldi_fbank(resample_22k_to_16k(ref)))[None]
    rtol = rtol_style(fbank.shape[1])
    assert_rel(ort_fp32.speaker_style(fbank), kit_expected["ref_style"], rtol, "ref_style")


def test_prompt_matches_kit(ort_fp32, kit_inputs, kit_expected, kit_geometry):
    E = kit_expected
    prompt = ort_fp32.make_prompt(
        kit_inputs["ref_wav_22k"],
        kit_geometry.max_prompt,
        prompt_content=kit_inputs["e2e_prompt_content"],
        style_from_prompt=True,  # upstream's style: the cropped prompt's
    )
    crop = kit_inputs["ref_wav_22k"][: kit_geometry.prompt_samples]
    assert_within(prompt.mel, E["e2e_prompt_mel"], mel_tolerance(crop), "e2e_prompt_mel")
    assert_rel(prompt.style, E["e2e_style"], rtol_style(fbank_frames(len(crop))), "e2e_style")
    assert_rel(prompt.cond, E["e2e_prompt_cond"], RTOL_LR, "e2e_prompt_cond")


def test_fp16_graphs_on_cpu(model_files, onnx_cache, kit_inputs, kit_expected, prompt_frames):
    """The GPU (fp16) graphs, run through onnxruntime's CPU casts: structure and half weights.

    Measured on the kit: CFM mel 73 dB, block output 65 dB SNR against the fp32 reference.
    """
    from voicegui.voices.onnx.export import ExportCache, Sources
    from voicegui.voices.onnx.runtime import OrtSeedVCModel

    files = dict(model_files, content_dir=None)
    model = OrtSeedVCModel.load(**files, device="cpu", precision="fp16", cache_dir=onnx_cache)
    assert model.precision == "fp16" and model.provider.startswith("CPU")
    E, I = kit_expected, kit_inputs
    mel = model.solve(
        E["ref_mel"], E["ref_cond"], E["ref_style"], E["src_cond"], 10, 0.7, noise=I["cfm_noise"]
    )
    # half precision (u = 2**-11) through ~2000 sqrt(fan-in) of sums per velocity: ~0.4 * 2000 *
    # 2**-11 ~ 0.4 relative worst-case, far less in practice; floors that a wrong graph
    # (dropped layer, bad cast) misses by tens of dB
    assert snr_db(mel, E["cfm_out_s10_cfg07"][..., prompt_frames:]) > 50
    wav = model.vocode(
        E["cfm_out_s10_cfg07"][..., prompt_frames:], I["hift_phase"], I["hift_noise"]
    )
    assert np.all(np.isfinite(wav))
    assert snr_db(wav, E["hift_wav"][0]) > 40
    cache = ExportCache(onnx_cache)
    src = Sources(files["dit"], files["hift"], files["campplus"])
    assert cache.cached(cache.stage_key("dit_step", "fp16", src))


def test_nearest_index_matches_torch_interpolate():
    import torch.nn.functional as F

    from voicegui.voices.onnx.graphs import nearest_index

    for t_in in (1, 7, 37, 99, 137, 149):
        for t_out in (1, 5, 65, 74, 170, 258, 2 * t_in):
            src = torch.arange(t_in, dtype=torch.float32)[None, None]
            ref = F.interpolate(src, size=t_out, mode="nearest")[0, 0].long().numpy()
            np.testing.assert_array_equal(nearest_index(t_in, t_out), ref, f"{t_in}->{t_out}")
