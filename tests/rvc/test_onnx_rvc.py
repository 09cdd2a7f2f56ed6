"""RVC synthesizers as ONNX graphs: the layouts of RVC's export, w-okada's and deiteris's voice
changers (with their metadata) and voicegui's own, built by exporting our synthesizer with
torch.onnx under the upstream input/output names; loaded, recognised and run with onnxruntime.

Parity with the kit: voicegui's layout takes every random draw as an input; the upstream
layouts draw inside the graph, so for the comparison their random nodes are turned into inputs
(onnx_surgery.py) and fed the kit's draws. The tolerance is the synthesizer's (synth_rounding:
onnxruntime's kernels sum in another order than torch's, which that estimate already covers).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
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
from tests.rvc.model_files import load_raw, save, without_pitch
from tests.rvc.onnx_surgery import inject_noise_inputs
from tests.rvc.synth_rounding import assert_rel, rtol_audio
from voicegui.voices.rvc.checkpoints import load_voice_model
from voicegui.voices.rvc.onnx_export import export_synthesizer
from voicegui.voices.rvc.onnx_model import OnnxModelError, OnnxSynthesizer
from voicegui.voices.rvc.synthesizer import SynthNoise

pytestmark = pytest.mark.slow  # exporting takes a few seconds per layout


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _kit():
    kit = rvc_kit_dir()
    if not (kit / "expected.npz").is_file():
        return None, [], []
    with np.load(kit / "expected.npz") as f:
        names = dict.fromkeys(f.files)
    streams = stream_settings(kit)
    blocks = [stream_blocks(names, s)[0] for s in streams]
    return kit, list(offline_runs(kit)), blocks


KIT, TAGS, FIRST_BLOCKS = _kit()
STREAM_MODEL = next(iter(stream_settings(KIT).values()))["model"] if KIT else None


@pytest.fixture(scope="module")
def torch_model(rvc_assets):
    return load_voice_model(rvc_assets / "weights" / f"{STREAM_MODEL}.pth")[0]


@pytest.fixture(scope="module")
def exports(rvc_assets, torch_model, tmp_path_factory):
    """layout -> (file as exported, file with the noise as inputs)."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for layout in ("voicegui", "rvc", "wokada", "deiteris"):
        path = export_synthesizer(torch_model, folder / f"{layout}.onnx", layout)
        injected = folder / f"{layout}_noise_in.onnx"
        inject_noise_inputs(path, injected)
        out[layout] = (path, injected)
    return out


def _noise(inputs, prefix: str) -> SynthNoise:
    return SynthNoise(z=_t(inputs[prefix + "zp_noise"]), sine=_t(inputs[prefix + "sine_noise"]))


@pytest.mark.parametrize("layout", ["voicegui", "rvc", "wokada", "deiteris"])
def test_layout_is_recognised(exports, torch_model, layout):
    path, _ = exports[layout]
    m = OnnxSynthesizer(path, threads=1)
    c = torch_model.config
    assert (m.layout, m.f0, m.feature_dim, m.sample_rate) == (
        layout,
        True,
        c.feature_dim,
        c.sample_rate,
    )
    names = [i.name for i in onnx.load(str(path)).graph.input]
    expected = {
        "rvc": ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"],
        "wokada": ["feats", "p_len", "pitch", "pitchf", "sid"],
        "deiteris": [
            "feats",
            "p_len",
            "pitch",
            "pitchf",
            "sid",
            "skip_head",
            "return_length",
            "formant_length",
        ],
    }
    if layout in expected:
        assert names == expected[layout]
    if layout in ("wokada", "deiteris"):
        meta = json.loads(m.session.get_modelmeta().custom_metadata_map["metadata"])
        assert meta["application"] == "VC_CLIENT" and meta["samplingRate"] == c.sample_rate
        assert meta["embChannels"] == c.feature_dim and meta["f0"] is True


@pytest.mark.parametrize("prefix", FIRST_BLOCKS)
@pytest.mark.parametrize("layout", ["voicegui", "deiteris"])
def test_streaming_layouts_match_upstream(
    exports, torch_model, rvc_kit, rvc_inputs, rvc_expected, layout, prefix
):
    E = rvc_expected
    settings = stream_settings(rvc_kit)[prefix.split("_")[0]]
    path = exports[layout][0] if layout == "voicegui" else exports[layout][1]
    m = OnnxSynthesizer(path, threads=2)
    assert m.layout == layout
    pitch = _t(E[prefix + "synth_pitch"])
    frames = pitch.shape[-1]
    out = m.infer(
        upsample_features(stream_block_features(E, prefix), frames),
        pitch,
        _t(E[prefix + "synth_pitchf"]),
        0,
        skip_head=int(settings["skip_head"]),
        return_length=int(settings["return_length"]),
        return_length2=int(settings["return_length2"]),
        noise=_noise(rvc_inputs, prefix),
    )
    assert_rel(out.audio.numpy(), E[prefix + "synth_out"], rtol_audio(torch_model, frames), layout)


@pytest.mark.parametrize("layout", ["rvc", "wokada"])
def test_whole_window_layouts_match_upstream(
    exports, torch_model, rvc_kit, rvc_inputs, rvc_expected, layout
):
    tag = next(t for t in TAGS if offline_runs(rvc_kit)[t]["model"] == STREAM_MODEL)
    E = rvc_expected
    m = OnnxSynthesizer(exports[layout][1], threads=2, sample_rate=torch_model.sample_rate)
    pitch = _t(E[f"{tag}_synth_pitch"])
    frames = pitch.shape[-1]
    feats = E.get(f"{tag}_feats_blend", E[f"{tag}_feats"])
    out = m.infer(
        upsample_features(feats, frames),
        pitch,
        _t(E[f"{tag}_synth_pitchf"]),
        0,
        noise=_noise(rvc_inputs, f"{tag}_"),
    )
    assert_rel(out.audio.numpy(), E[f"{tag}_synth_out"], rtol_audio(torch_model, frames), layout)


def _stream_call(m, E, prefix, settings, noise=None):
    pitch = _t(E[prefix + "synth_pitch"])
    return m.infer(
        upsample_features(stream_block_features(E, prefix), pitch.shape[-1]),
        pitch,
        _t(E[prefix + "synth_pitchf"]),
        0,
        skip_head=int(settings["skip_head"]),
        return_length=int(settings["return_length"]),
        return_length2=int(settings["return_length2"]),
        noise=noise,
    ).audio


@pytest.mark.parametrize("layout", ["rvc", "wokada", "deiteris"])
def test_upstream_files_run_with_their_own_noise(exports, rvc_kit, rvc_expected, layout):
    """As users have them (noise drawn inside): a streaming call gives the block's samples,
    finite and bounded, and fresh draws each call."""
    prefix = FIRST_BLOCKS[0]
    settings = stream_settings(rvc_kit)[prefix.split("_")[0]]
    settings = dict(settings, return_length2=settings["return_length"])  # no formant here
    m = OnnxSynthesizer(exports[layout][0], threads=2)
    a = _stream_call(m, rvc_expected, prefix, settings)
    b = _stream_call(m, rvc_expected, prefix, settings)
    assert a.shape == (1, 1, int(settings["return_length"]) * m.upp)
    assert torch.isfinite(a).all() and 0 < a.abs().max() < 1
    assert not torch.equal(a, b)


def test_voicegui_layout_repeats(exports, rvc_kit, rvc_expected):
    prefix = FIRST_BLOCKS[0]
    settings = stream_settings(rvc_kit)[prefix.split("_")[0]]
    m = OnnxSynthesizer(exports["voicegui"][0], threads=2)
    m.reset_rng(3)
    a = _stream_call(m, rvc_expected, prefix, settings)
    m.reset_rng(3)
    assert torch.equal(a, _stream_call(m, rvc_expected, prefix, settings))


def test_formant_needs_streaming_inputs(exports, rvc_kit, rvc_expected):
    prefix = FIRST_BLOCKS[0]
    settings = dict(stream_settings(rvc_kit)[prefix.split("_")[0]])
    settings["return_length2"] = str(int(settings["return_length"]) + 1)
    m = OnnxSynthesizer(exports["wokada"][0], threads=1)
    with pytest.raises(OnnxModelError, match="no formant input"):
        _stream_call(m, rvc_expected, prefix, settings)


def test_no_pitch_models(rvc_assets, rvc_expected, tmp_path):
    """A no-f0 model exported in w-okada's and voicegui's layouts: recognised as such, and
    voicegui's equals the torch model for the same draws."""
    stem = sorted(p.stem for p in (rvc_assets / "weights").glob("*.pth"))[0]
    path = save(without_pitch(load_raw(rvc_assets / "weights" / f"{stem}.pth")), tmp_path / "n.pth")
    model = load_voice_model(path)[0]
    prefix = FIRST_BLOCKS[0]
    frames = rvc_expected[prefix + "synth_pitch"].shape[-1]
    phone = upsample_features(stream_block_features(rvc_expected, prefix), frames)
    phone = phone[..., : model.config.feature_dim].contiguous()
    kw = dict(skip_head=frames - 12, return_length=8, return_length2=8)
    z = torch.randn(
        1, model.config.inter_channels, 12 + 24, generator=torch.Generator().manual_seed(0)
    )
    ref = model.infer(phone, None, None, 0, noise=SynthNoise(z=z), **kw).audio
    for layout in ("wokada", "voicegui"):
        m = OnnxSynthesizer(export_synthesizer(model, tmp_path / f"{layout}.onnx", layout))
        assert (m.layout, m.f0, m.feature_dim) == (layout, False, model.config.feature_dim)
        out = m.infer(phone, None, None, 0, noise=SynthNoise(z=z), **kw).audio
        assert out.shape == ref.shape
        if layout == "voicegui":
            assert_rel(out.numpy(), ref.numpy(), rtol_audio(model, frames), "nono")


def test_unusable_onnx_files_are_named(exports, tmp_path):
    data = exports["voicegui"][0].read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match="truncated or corrupt"):
        OnnxSynthesizer(tmp_path / "cut.onnx")
    with pytest.raises(OnnxModelError, match="not found"):
        OnnxSynthesizer(tmp_path / "missing.onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(OnnxModelError, match="not an RVC voice model export: its inputs are x"):
        OnnxSynthesizer(tmp_path / "other.onnx")
