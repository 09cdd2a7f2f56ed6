"""Content encoder: XLS-R (wav2vec 2.0) cut to its first layers, from transformers.

Seed-VC's real-time model reads the output of layer 12 of facebook/wav2vec2-xls-r-300m (after
the encoder's final layer norm). The other 12 layers are never built or computed. Weights come
from the published ``pytorch_model.bin`` (or ``model.safetensors``), loaded with
``weights_only=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from voicegui.voices.seedvc.checkpoints import CheckpointError, load_into, read_checkpoint

LAYERS = 12
SAMPLE_RATE = 16000


def _conv_frames(n: int, kernels: list[int], strides: list[int]) -> int:
    for k, s in zip(kernels, strides, strict=True):
        n = (n - k) // s + 1
    return n


class ContentEncoder(nn.Module):
    """16 kHz waveform (B, N) -> features (B, T, hidden) at ~50 frames/s."""

    def __init__(self, config: dict, layers: int = LAYERS) -> None:
        super().__init__()
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        cfg = dict(config)
        cfg["num_hidden_layers"] = min(layers, int(cfg.get("num_hidden_layers", layers)))
        for key in ("mask_time_prob", "layerdrop", "hidden_dropout", "attention_dropout"):
            cfg[key] = 0.0
        self.config = Wav2Vec2Config(**cfg)
        self.model = Wav2Vec2Model(self.config)
        self.model.eval()
        self.layers = self.config.num_hidden_layers

    def frames(self, samples: int) -> int:
        return _conv_frames(samples, list(self.config.conv_kernel), list(self.config.conv_stride))

    @torch.inference_mode()
    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        if wav16k.dim() == 1:
            wav16k = wav16k[None]
        # the feature extractor's per-utterance normalisation (do_normalize=True)
        x = wav16k.float()
        x = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(
            x.var(dim=-1, keepdim=True, unbiased=False) + 1e-7
        )
        dtype = next(self.model.parameters()).dtype
        return self.model(x.to(dtype)).last_hidden_state


def load_content_encoder(
    folder: str | Path, layers: int = LAYERS, device: str | torch.device = "cpu"
) -> ContentEncoder:
    """Build the encoder from ``config.json`` and the weights file in ``folder``."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read the content encoder config in {folder}: {exc}") from exc
    enc = ContentEncoder(config, layers)
    weights = folder / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = read_checkpoint(folder / "pytorch_model.bin")
    # the published file is a Wav2Vec2ForPreTraining state: keep the wav2vec2 body only, and
    # only the layers we build
    prefix = "wav2vec2."
    body = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    keep = {}
    for k, v in body.items():
        if k.startswith("encoder.layers."):
            if int(k.split(".")[2]) >= enc.layers:
                continue
        elif not k.startswith(
            ("feature_extractor.", "feature_projection.", "encoder.", "masked_spec_embed")
        ):
            continue  # quantizer, project_hid, ... of the pre-training heads
        keep[k] = v
    # the weight-normed positional conv is stored as weight_g/weight_v (older) or
    # parametrizations.weight.original0/1 (newer transformers); accept both
    own = enc.model.state_dict()
    pos = "encoder.pos_conv_embed.conv."
    renames = {
        pos + "weight_g": pos + "parametrizations.weight.original0",
        pos + "weight_v": pos + "parametrizations.weight.original1",
    }
    for old, new in renames.items():
        if old in keep and old not in own and new in own:
            keep[new] = keep.pop(old)
        elif new in keep and new not in own and old in own:
            keep[old] = keep.pop(new)
    if "masked_spec_embed" not in own:
        keep.pop("masked_spec_embed", None)  # only used for training-time masking
    load_into(enc.model, keep, what="XLS-R content encoder")
    return enc.to(device)
