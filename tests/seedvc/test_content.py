"""The XLS-R content encoder path on a tiny random config (the real weights are 1.2 GB)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.seedvc.conftest import assert_rel, rounding_rtol
from voicegui.voices.seedvc.checkpoints import CheckpointError
from voicegui.voices.seedvc.content import load_content_encoder

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [16] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "conv_bias": True,
    "mask_time_prob": 0.05,
    "model_type": "wav2vec2",
    "vocab_size": 32,
}


@pytest.fixture(scope="module")
def tiny_xlsr(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("xlsr")
    model = Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY)).eval()
    (folder / "config.json").write_text(json.dumps(TINY), encoding="utf-8")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder, model


def test_truncated_encoder_equals_the_full_model_at_that_layer(tiny_xlsr):
    folder, full = tiny_xlsr
    enc = load_content_encoder(folder, layers=2)
    assert len(enc.model.encoder.layers) == 2  # the other layers are never built
    wav = torch.randn(1, 16000) * 0.1
    out = enc(wav)
    assert out.shape == (1, enc.frames(16000), 32) and enc.frames(16000) == 49
    x = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        hidden = full.wav2vec2(x, output_hidden_states=True).hidden_states
        want = full.wav2vec2.encoder.layer_norm(hidden[2])
    # the same modules and weights, summed in other orders (tests/seedvc/conftest.py): conv stack
    # sqrt(10) + 4 sqrt(48) + 2 sqrt(32) + sqrt(16) ~ 46, positional conv sqrt(256) = 16,
    # 2 layers x (4 sqrt(32) + sqrt(16 head dim) + sqrt(49 keys) + sqrt(32) + sqrt(64)) ~ 94
    assert_rel(out.numpy(), want.numpy(), rounding_rtol(46 + 16 + 94), "content features")


def test_missing_weights_file_and_missing_key_are_clear(tiny_xlsr, tmp_path):
    folder, full = tiny_xlsr
    (tmp_path / "config.json").write_text(json.dumps(TINY), encoding="utf-8")
    with pytest.raises(CheckpointError, match="not found"):
        load_content_encoder(tmp_path)
    state = full.state_dict()
    state.pop("wav2vec2.encoder.layers.0.attention.k_proj.weight")
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="encoder.layers.0.attention.k_proj.weight"):
        load_content_encoder(tmp_path, layers=2)
