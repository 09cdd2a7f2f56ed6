"""HuBERT-base / ContentVec content features for RVC, written from the published architecture.

RVC v2 models take the output of the last of HuBERT-base's 12 encoder layers (768-d); v1 models
take layer 9 projected by ``final_proj`` to 256-d (so a v1 voice never computes layers 10-12).
The encoder is post-LN (wav2vec 2.0 "base" layout) and the 16 kHz input goes in unnormalised.

Weights load from either layout users have, both read with ``weights_only=True``:

- the transformers folder ``hubert_base/`` (``config.json`` + ``pytorch_model.bin`` or
  ``model.safetensors``) that current RVC reads;
- the fairseq checkpoint ``hubert_base.pt`` that RVC installs have shipped for years (the
  weights under ``model``, with fairseq's module names; see :data:`FAIRSEQ_NAMES`).

The positional convolution's weight norm is folded into a plain weight once at load time,
with the same arithmetic as at run time upstream (``v * (g / ||v||)``, the norm over every
dimension but the kernel tap).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voicegui.voices.rvc.weights_file import read_weights_file
from voicegui.voices.seedvc.checkpoints import CheckpointError, load_into

WHAT = "HuBERT content encoder"
SAMPLE_RATE = 16000
V1_LAYER = 9  # RVC v1 projects this layer's output with final_proj


@dataclass(frozen=True)
class HubertShape:
    """The sizes of a HuBERT encoder (defaults: HuBERT-base, what RVC uses)."""

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    pos_kernel: int = 128
    pos_groups: int = 16
    proj: int = 256  # final_proj output (0: the file has none)
    eps: float = 1e-5

    def frames(self, samples: int) -> int:
        """Feature frames (50/s) for ``samples`` of 16 kHz audio."""
        n = samples
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            n = (n - k) // s + 1
        return max(n, 0)

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one frame."""
        n = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride, strict=True))):
            n = (n - 1) * s + k
        return n


# ------------------------------------------------------------------------------------ model


class _ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: bool, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, bias=False)
        # one group per channel: a per-channel norm over time (first layer only)
        self.layer_norm = nn.GroupNorm(cout, cout, eps=eps, affine=True) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class _FeatureExtractor(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        cins = (1, *s.conv_dim[:-1])
        self.conv_layers = nn.ModuleList(
            _ConvLayer(ci, co, k, st, i == 0, s.eps)
            for i, (ci, co, k, st) in enumerate(
                zip(cins, s.conv_dim, s.conv_kernel, s.conv_stride, strict=True)
            )
        )

    def forward(self, wav: Tensor) -> Tensor:
        x = wav[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class _FeatureProjection(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        self.layer_norm = nn.LayerNorm(s.conv_dim[-1], eps=s.eps)
        self.projection = nn.Linear(s.conv_dim[-1], s.hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.layer_norm(x))


class _PositionalConv(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        k = s.pos_kernel
        self.conv = nn.Conv1d(s.hidden, s.hidden, k, padding=k // 2, groups=s.pos_groups)
        self.trim = 1 if k % 2 == 0 else 0  # an even kernel yields one frame too many

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        self.heads = s.heads
        self.q_proj = nn.Linear(s.hidden, s.hidden)
        self.k_proj = nn.Linear(s.hidden, s.hidden)
        self.v_proj = nn.Linear(s.hidden, s.hidden)
        self.out_proj = nn.Linear(s.hidden, s.hidden)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        # scale 1/sqrt(head dim), no mask: every frame sees the whole window
        o = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(o.transpose(1, 2).reshape(b, t, c))


class _FeedForward(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        self.intermediate_dense = nn.Linear(s.hidden, s.ffn)
        self.output_dense = nn.Linear(s.ffn, s.hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class _Layer(nn.Module):
    """Post-LN: normalise after each residual sum."""

    def __init__(self, s: HubertShape):
        super().__init__()
        self.attention = _Attention(s)
        self.layer_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.feed_forward = _FeedForward(s)
        self.final_layer_norm = nn.LayerNorm(s.hidden, eps=s.eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class _Encoder(nn.Module):
    def __init__(self, s: HubertShape):
        super().__init__()
        self.pos_conv_embed = _PositionalConv(s)
        self.layer_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.layers = nn.ModuleList(_Layer(s) for _ in range(s.layers))


class HubertContent(nn.Module):
    """16 kHz waveform (B, N) or (N,) -> content features (B, T, C) at 50 frames/s."""

    def __init__(self, shape: HubertShape = HubertShape()):
        super().__init__()
        self.shape = shape
        self.feature_extractor = _FeatureExtractor(shape)
        self.feature_projection = _FeatureProjection(shape)
        self.encoder = _Encoder(shape)
        self.final_proj = nn.Linear(shape.hidden, shape.proj) if shape.proj else None
        self.eval()

    def frames(self, samples: int) -> int:
        return self.shape.frames(samples)

    def _input(self, wav: Tensor) -> Tensor:
        if wav.dim() == 1:
            wav = wav[None]
        if wav.shape[-1] < self.shape.min_samples:
            raise ValueError(
                f"HuBERT needs at least {self.shape.min_samples} samples at 16 kHz, "
                f"got {wav.shape[-1]}"
            )
        return wav.to(self.feature_projection.projection.weight.dtype)

    def conv_features(self, wav: Tensor) -> Tensor:
        """The convolutional feature extractor's output, (B, 512, T)."""
        return self.feature_extractor(self._input(wav))

    def hidden_states(self, wav: Tensor, layers: int | None = None) -> list[Tensor]:
        """[input of layer 1, output of layer 1, ..., output of layer ``layers``], each
        (B, T, hidden). Layers past ``layers`` are not computed."""
        layers = self.shape.layers if layers is None else layers
        if not 0 <= layers <= self.shape.layers:
            raise ValueError(f"layer {layers} of a {self.shape.layers}-layer encoder")
        x = self.feature_projection(self.conv_features(wav).transpose(1, 2))
        x = self.encoder.layer_norm(x + self.encoder.pos_conv_embed(x))
        out = [x]
        for layer in self.encoder.layers[:layers]:
            x = layer(x)
            out.append(x)
        return out

    @torch.inference_mode()
    def features(self, wav: Tensor, version: str) -> Tensor:
        """RVC's content features: "v2" the last layer (B, T, 768); "v1" ``final_proj`` of
        layer 9 (B, T, 256)."""
        if version == "v2":
            return self.hidden_states(wav)[-1]
        if version == "v1":
            if self.final_proj is None:
                raise CheckpointError(f"{WHAT}: this file has no final_proj, which v1 voices need")
            return self.final_proj(self.hidden_states(wav, V1_LAYER)[-1])
        raise ValueError(f"unknown RVC version {version!r} (expected 'v1' or 'v2')")

    def forward(self, wav: Tensor, version: str = "v2") -> Tensor:
        return self.features(wav, version)


# ------------------------------------------------------------------------------------ loading

# fairseq HubertModel names -> ours (= transformers HubertModel's), by pattern
FAIRSEQ_NAMES: tuple[tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"feature_extractor\.conv_layers\.0\.2\.", "feature_extractor.conv_layers.0.layer_norm."),
    (r"layer_norm\.", "feature_projection.layer_norm."),
    (r"post_extract_proj\.", "feature_projection.projection."),
    (r"encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"encoder\.layer_norm\.", "encoder.layer_norm."),
    (r"encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"final_proj\.", "final_proj."),
)
# stored for training only (masking, label logits): never used to compute features
TRAINING_ONLY = ("masked_spec_embed", "mask_emb", "label_embs_concat")
_POS = "encoder.pos_conv_embed.conv."


def _rename_fairseq(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        if key in TRAINING_ONLY:
            continue
        for pattern, target in FAIRSEQ_NAMES:
            new, n = re.subn("^" + pattern, target, key)
            if n:
                out[new] = value
                break
        else:
            out[key] = value  # reported as unexpected by the strict load
    return out


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """transformers files may carry the model under ``hubert.`` (HubertForCTC and friends)."""
    out = {}
    for key, value in state.items():
        key = key[len("hubert.") :] if key.startswith("hubert.") else key
        if key not in TRAINING_ONLY:
            out[key] = value
    return out


def _fold_weight_norm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Replace the positional conv's (g, v) pair, under either name pair, by ``weight``."""
    pairs = ((_POS + "weight_g", _POS + "weight_v"),)
    pairs += (
        (_POS + "parametrizations.weight.original0", _POS + "parametrizations.weight.original1"),
    )
    for g_key, v_key in pairs:
        if g_key in state and v_key in state:
            g, v = state.pop(g_key).float(), state.pop(v_key).float()
            dims = [i for i, n in enumerate(g.shape) if n != 1]
            if g.dim() != v.dim() or len(dims) != 1 or g.shape[dims[0]] != v.shape[dims[0]]:
                raise CheckpointError(
                    f"{WHAT}: positional conv weight norm of shape {tuple(g.shape)} does not fit "
                    f"its weight {tuple(v.shape)}"
                )
            # the magnitude g is kept per kernel tap (dim 2) in HuBERT; whichever dim it is,
            # the norm runs over all the others, as torch's weight norm computes it
            state[_POS + "weight"] = torch._weight_norm(v, g, dims[0])
    return state


def _shape_from_config(config: Mapping) -> HubertShape:
    if (
        config.get("do_stable_layer_norm", False)
        or config.get("feat_extract_norm", "group") != "group"
    ):
        raise CheckpointError(
            f"{WHAT}: this is a pre-LN (large-style) HuBERT/wav2vec 2.0; RVC uses HuBERT-base"
        )
    if config.get("conv_bias", False):
        raise CheckpointError(f"{WHAT}: convolutions with bias are not HuBERT-base's layout")
    for key in ("hidden_act", "feat_extract_activation"):
        if config.get(key, "gelu") != "gelu":
            raise CheckpointError(f"{WHAT}: {key} {config[key]!r} is not HuBERT-base's GELU")
    if not config.get("feat_proj_layer_norm", True):
        raise CheckpointError(f"{WHAT}: a feature projection without layer norm is not supported")
    d = HubertShape()
    return HubertShape(
        hidden=int(config.get("hidden_size", d.hidden)),
        layers=int(config.get("num_hidden_layers", d.layers)),
        heads=int(config.get("num_attention_heads", d.heads)),
        ffn=int(config.get("intermediate_size", d.ffn)),
        conv_dim=tuple(int(c) for c in config.get("conv_dim", d.conv_dim)),
        conv_kernel=tuple(int(c) for c in config.get("conv_kernel", d.conv_kernel)),
        conv_stride=tuple(int(c) for c in config.get("conv_stride", d.conv_stride)),
        pos_kernel=int(config.get("num_conv_pos_embeddings", d.pos_kernel)),
        pos_groups=int(config.get("num_conv_pos_embedding_groups", d.pos_groups)),
        proj=int(config.get("classifier_proj_size", d.proj)),
        eps=float(config.get("layer_norm_eps", d.eps)),
    )


def _shape_from_state(state: Mapping[str, Tensor], base: HubertShape) -> HubertShape:
    """Sizes read off the tensors (a fairseq file has no transformers config)."""
    try:
        hidden = state["feature_projection.projection.weight"].shape[0]
        layers = 1 + max(
            int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k))
        )
        convs = sorted(
            (int(m.group(1)), state[k].shape)
            for k in state
            if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", k))
        )
        pos = state[_POS + "weight"].shape
        ffn = state["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{WHAT}: not a HuBERT checkpoint (no {exc})") from exc
    kernels = tuple(int(s[2]) for _, s in convs)
    strides = base.conv_stride if kernels == base.conv_kernel else None
    if strides is None:
        raise CheckpointError(
            f"{WHAT}: conv kernels {kernels} are not HuBERT-base's {base.conv_kernel}"
        )
    proj = state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0
    return replace(
        base,
        hidden=int(hidden),
        layers=layers,
        heads=max(1, int(hidden) // 64),
        ffn=int(ffn),
        conv_dim=tuple(int(s[0]) for _, s in convs),
        conv_kernel=kernels,
        pos_kernel=int(pos[2]),
        pos_groups=int(hidden) // int(pos[1]),
        proj=int(proj),
    )


def _fairseq_shape(obj: Mapping, state: Mapping[str, Tensor]) -> HubertShape:
    base = HubertShape()
    cfg = obj.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, Mapping) else None
    if isinstance(model_cfg, Mapping):
        if model_cfg.get("layer_norm_first", False):
            raise CheckpointError(f"{WHAT}: a pre-LN (large-style) HuBERT; RVC uses HuBERT-base")
        heads = model_cfg.get("encoder_attention_heads")
        shape = _shape_from_state(state, base)
        return replace(shape, heads=int(heads)) if isinstance(heads, int) else shape
    return _shape_from_state(state, base)


def _build(shape: HubertShape, state: dict[str, Tensor], device) -> HubertContent:
    if shape.hidden % shape.heads:
        raise CheckpointError(
            f"{WHAT}: {shape.hidden} channels do not split into {shape.heads} heads"
        )
    model = HubertContent(shape)
    load_into(model, state, what=WHAT)  # strict; fp16 files are widened to float32 here
    return model.to(device).eval()


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{WHAT}: cannot read {path.name}: {exc}") from exc
    return read_weights_file(path, WHAT)


def load_hubert(path: str | Path, device: str | torch.device = "cpu") -> HubertContent:
    """Load HuBERT-base / ContentVec from a transformers folder (``config.json`` +
    ``pytorch_model.bin`` / ``model.safetensors``), a folder holding ``hubert_base.pt``, or a
    weights file (fairseq ``hubert_base.pt`` or a bare transformers state dict)."""
    path = Path(path)
    config: Mapping | None = None
    if path.is_dir():
        weights = next(
            (path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()),
            None,
        )
        if weights is not None and (path / "config.json").is_file():
            try:
                config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"{WHAT}: cannot read {path / 'config.json'}: {exc}") from exc
            if not isinstance(config, Mapping):
                raise CheckpointError(f"{WHAT}: {path / 'config.json'} is not a JSON object")
        elif (path / "hubert_base.pt").is_file():
            weights = path / "hubert_base.pt"
        else:
            raise CheckpointError(
                f"{WHAT}: {path} holds neither config.json with pytorch_model.bin/"
                "model.safetensors nor hubert_base.pt"
            )
        path = weights
    obj = _read_state(path)
    model_state = obj.get("model")
    if isinstance(model_state, Mapping) and "post_extract_proj.weight" in model_state:
        state = _fold_weight_norm(_rename_fairseq(model_state))
        shape = _fairseq_shape(obj, state)
    else:
        state = _fold_weight_norm(_strip_prefix(obj))
        if "feature_projection.projection.weight" not in state:
            keys = ", ".join(list(map(str, obj))[:8])
            raise CheckpointError(
                f"{WHAT}: {path.name} is not a HuBERT/ContentVec checkpoint (keys: {keys})"
            )
        shape = (
            _shape_from_config(config)
            if config is not None
            else _shape_from_state(state, HubertShape())
        )
        if "final_proj.weight" not in state:
            shape = replace(shape, proj=0)
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{WHAT}: {path.name} has entries that are not tensors: {bad[:5]}")
    return _build(shape, state, device)
