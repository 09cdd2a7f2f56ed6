"""HuBERT/ContentVec content features against the RVC kit, and loading every layout users have.

Tolerances (max|diff| <= rtol * max|expected|) come from tests/rvc/front_rounding.py, with the
fan-ins of the stages up to each debug point; the negative controls
(test_front_negative_controls.py) show they catch real mistakes.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from tests.rvc.front_kit import kit_hubert, t
from tests.rvc.front_rounding import conv_stack_fan_in_sum, hubert_fan_in_sum, rounding_rtol
from tests.seedvc.conftest import assert_rel
from voicegui.voices.rvc.hubert import HubertContent, load_hubert
from voicegui.voices.seedvc.checkpoints import CheckpointError

pytestmark = pytest.mark.slow  # HuBERT-base on 2 s of audio, several times


@pytest.fixture(scope="module")
def hubert(rvc_assets) -> HubertContent:
    return kit_hubert(rvc_assets)


@pytest.fixture(scope="module")
def wav(rvc_inputs) -> torch.Tensor:
    return t(rvc_inputs["src_wav_16k"])


def rtol_at(model: HubertContent, samples: int, layers: int, projected: bool = False) -> float:
    return rounding_rtol(hubert_fan_in_sum(model.shape, samples, layers, projected))


def test_structure_matches_the_key_listing(rvc_kit):
    listing = json.loads((rvc_kit / "keys_hubert.json").read_text())["entries"]
    on_disk = {}
    for key, v in listing.items():
        key = key.removeprefix("hubert.")
        if key == "masked_spec_embed" or key.endswith("weight_g"):
            continue  # training-time masking; the weight norm's magnitude folds into the weight
        on_disk[key.replace("weight_v", "weight")] = tuple(v["shape"])
    own = {k: tuple(v.shape) for k, v in HubertContent().state_dict().items()}
    assert own == on_disk


def test_frames(hubert, wav, rvc_expected):
    assert hubert.frames(wav.numel()) == rvc_expected["hubert_v2_feats"].shape[1]
    assert hubert.frames(hubert.shape.min_samples) == 1
    assert hubert.frames(hubert.shape.min_samples - 1) == 0
    with pytest.raises(ValueError, match="at least"):
        hubert.features(wav[: hubert.shape.min_samples - 1], "v2")


def test_conv_features(hubert, wav, rvc_expected):
    with torch.inference_mode():
        out = hubert.conv_features(wav)
    rtol = rounding_rtol(conv_stack_fan_in_sum(hubert.shape, wav.numel()))
    assert_rel(out.numpy(), rvc_expected["hubert_conv_feats"], rtol, "hubert_conv_feats")


def test_hidden_states(hubert, wav, rvc_expected):
    with torch.inference_mode():
        hidden = hubert.hidden_states(wav, 9)
    for layer in (0, 9):
        name = f"hubert_hidden_{layer}"
        assert_rel(
            hidden[layer].numpy(), rvc_expected[name], rtol_at(hubert, wav.numel(), layer), name
        )


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_features(hubert, wav, rvc_expected, version):
    out = hubert.features(wav, version)
    want = rvc_expected[f"hubert_{version}_feats"]
    layers = hubert.shape.layers if version == "v2" else 9
    rtol = rtol_at(hubert, wav.numel(), layers, projected=version == "v1")
    assert_rel(out.numpy(), want, rtol, f"hubert_{version}_feats")


def test_batch_rows_are_independent(hubert, wav):
    half = wav[: wav.numel() // 2]
    both = hubert.features(torch.stack([half, half.flip(0)]), "v2")
    torch.testing.assert_close(both[:1], hubert.features(half, "v2"), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the fairseq-era hubert_base.pt


# fairseq HubertModel's own names, written from its published module layout (independent of the
# product's mapping, which these tests check)
def to_fairseq_name(key: str) -> str:
    import re

    rules = [
        (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_projection\.layer_norm\.", "layer_norm."),
        (r"^feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
        (r"^encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
        (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
        (r"^masked_spec_embed$", "mask_emb"),
    ]
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


class _FairseqDictionary:
    """What fairseq pickles as task_state's label dictionary (a plain object)."""


@pytest.fixture
def fake_fairseq(monkeypatch):
    """Registers a stand-in fairseq.data.dictionary so torch.save pickles the object under
    fairseq's name, as in the files RVC installs ship; the loader never imports it."""
    mods = {n: types.ModuleType(n) for n in ("fairseq", "fairseq.data", "fairseq.data.dictionary")}
    _FairseqDictionary.__module__ = "fairseq.data.dictionary"
    _FairseqDictionary.__qualname__ = _FairseqDictionary.__name__ = "Dictionary"
    mods["fairseq.data.dictionary"].Dictionary = _FairseqDictionary
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return _FairseqDictionary


def write_fairseq_checkpoint(assets, path, dictionary_cls, dtype=torch.float32, legacy=False):
    state = torch.load(assets / "hubert_base" / "pytorch_model.bin", weights_only=True)
    model = {to_fairseq_name(k): v.to(dtype) for k, v in state.items()}
    labels = dictionary_cls()
    labels.symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(500)]
    labels.count = [1] * len(labels.symbols)
    labels.indices = {s: i for i, s in enumerate(labels.symbols)}
    model["label_embs_concat"] = torch.zeros(len(labels.symbols), 256, dtype=dtype)
    obj = {
        "args": None,
        "cfg": {
            "model": {"_name": "hubert", "encoder_attention_heads": 12, "layer_norm_first": False}
        },
        "model": model,
        "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 400000}],
        "extra_state": {"epoch": 1},
        "task_state": {"dictionaries": [labels]},
    }
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_fairseq_checkpoint_gives_the_same_features(
    rvc_assets, hubert, wav, tmp_path, fake_fairseq
):
    path = write_fairseq_checkpoint(rvc_assets, tmp_path / "hubert_base.pt", fake_fairseq)
    for source in (path, tmp_path):  # the file, or the folder RVC keeps it in
        model = load_hubert(source)
        assert model.shape == hubert.shape
        for version in ("v2", "v1"):
            assert torch.equal(model.features(wav, version), hubert.features(wav, version))


def test_fairseq_fp16_legacy_file_is_widened(rvc_assets, hubert, wav, tmp_path, fake_fairseq):
    """A float16 copy in torch's legacy (pre-zip) format, as older installs may hold."""
    path = write_fairseq_checkpoint(
        rvc_assets, tmp_path / "hubert_base.pt", fake_fairseq, torch.float16, legacy=True
    )
    model = load_hubert(path)
    ours, ref = model.state_dict(), hubert.state_dict()
    for key, value in ours.items():
        assert value.dtype == torch.float32, key
        if "pos_conv_embed.conv.weight" not in key:  # folded from (g, v): compare the parts
            assert torch.equal(value, ref[key].half().float()), key
    out = model.features(wav, "v2")
    assert torch.isfinite(out).all() and out.shape == hubert.features(wav, "v2").shape


# ---------------------------------------------------------------- damaged and foreign files


@pytest.fixture(scope="module")
def kit_state(rvc_assets):
    return torch.load(rvc_assets / "hubert_base" / "pytorch_model.bin", weights_only=True)


def copy_folder(rvc_assets, dst):
    dst.mkdir()
    (dst / "config.json").write_bytes((rvc_assets / "hubert_base" / "config.json").read_bytes())
    return dst


def test_truncated_weights(rvc_assets, tmp_path):
    folder = copy_folder(rvc_assets, tmp_path / "hubert_base")
    data = (rvc_assets / "hubert_base" / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*truncated or corrupt"):
        load_hubert(folder)


def test_missing_and_misshaped_tensors_are_named(kit_state, rvc_assets, tmp_path):
    folder = copy_folder(rvc_assets, tmp_path / "hubert_base")
    state = dict(kit_state)
    del state["encoder.layers.3.attention.k_proj.weight"]
    state["final_proj.weight"] = state["final_proj.weight"][:128]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as err:
        load_hubert(folder)
    assert "encoder.layers.3.attention.k_proj.weight" in str(err.value)
    assert "final_proj.weight" in str(err.value)


def test_empty_folder_and_foreign_file(tmp_path):
    with pytest.raises(CheckpointError, match="neither config.json"):
        load_hubert(tmp_path)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a HuBERT"):
        load_hubert(tmp_path / "other.pt")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="noise.pt: not a torch weights file"):
        load_hubert(tmp_path / "noise.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_hubert(tmp_path / "absent.pt")


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_code_in_a_file_is_refused_by_name(kit_state, tmp_path):
    path = tmp_path / "hubert_base.pt"
    torch.save({"model": {"post_extract_proj.weight": torch.zeros(1)}, "hook": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match=r"refusing.*(posix|os)\.system"):
        load_hubert(path)


def test_pre_ln_config_is_refused(rvc_assets, tmp_path):
    folder = tmp_path / "hubert_large"
    folder.mkdir()
    config = json.loads((rvc_assets / "hubert_base" / "config.json").read_text())
    config["do_stable_layer_norm"] = True
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "pytorch_model.bin").symlink_to(rvc_assets / "hubert_base" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pre-LN"):
        load_hubert(folder)
