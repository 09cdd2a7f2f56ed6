"""Reading RVC voice model files (``.pth``) as users have them, safely.

The file is ``torch.save`` of a dict: ``weight`` (the synthesizer's state dict, usually fp16,
without the training-only posterior encoder ``enc_q.*``), ``config`` (the 18-item list),
``version`` ('v1' 256-d features / 'v2' 768-d), ``f0`` (1/0, or True/False), ``sr`` ('40k'...),
``info``. Applio adds metadata (``model_name``, ``author``, ``epoch``, ``step``,
``creation_date``, ``model_hash``, ``overtrain_info``, ``dataset_length``, ``embedder_model``,
``speakers_id``, ``vocoder``) and may keep weight norm under the parametrization names
(``parametrizations.weight.original0/1``) instead of ``weight_g``/``weight_v``.

Loading uses ``torch.load(weights_only=True)``: nothing but tensors and plain values is ever
unpickled. Weight norm is folded into plain weights once (in float64, rounded to float32), so
inference runs bare convolutions. Anything that does not fit (a damaged or truncated file, a
training checkpoint, a vocoder other than HiFi-GAN, missing or mis-shaped tensors) raises
VoiceModelError with a message that names the problem.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .config import FEATURE_DIMS, ConfigError, SynthConfig, parse_rate
from .synthesizer import Synthesizer

SUPPORTED_VOCODER = "HiFi-GAN"
_WEIGHT_NORM_PAIRS = (
    ("weight_g", "weight_v"),
    ("parametrizations.weight.original0", "parametrizations.weight.original1"),
)
TRAINING_ONLY_PREFIX = "enc_q."
_METADATA_KEYS = (
    "model_name",
    "author",
    "epoch",
    "step",
    "creation_date",
    "model_hash",
    "overtrain_info",
    "dataset_length",
    "embedder_model",
    "speakers_id",
    "info",
)


class VoiceModelError(RuntimeError):
    """A voice model file cannot be used; the message says why."""


@dataclass(frozen=True)
class VoiceModelInfo:
    """What a voice model file says about itself (for listing it and building it)."""

    path: Path
    version: str  # 'v1' or 'v2' (from the feature width)
    sample_rate: int
    f0: bool
    vocoder: str
    speakers: int
    config: SynthConfig
    metadata: dict = field(default_factory=dict)  # Applio's extras, 'info', ... (plain values)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim


def read_torch_file(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise VoiceModelError(f"voice model not found: {path}")
    if path.stat().st_size == 0:
        raise VoiceModelError(f"{path.name} is empty")
    corrupt = f"cannot read {path.name}: the file is truncated or corrupt, or not a PyTorch file"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only names the first object it refused; anything else is a broken stream
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if refused:
            raise VoiceModelError(
                f"refusing to load {path.name}: it holds a {refused.group(1)} object, and only "
                f"tensors and plain values are read from model files"
            ) from exc
        raise VoiceModelError(corrupt) from exc
    except Exception as exc:  # zip, EOF, storage-size and decoding errors of a damaged file
        raise VoiceModelError(f"{corrupt} ({type(exc).__name__}: {exc})") from exc


def fold_weight_norm(state: Mapping[str, Tensor], what: str) -> dict[str, Tensor]:
    """Every weight-norm pair (g, v) -> ``weight`` = g * v / ||v|| in float32; other tensors
    as float32 (integer buffers untouched).

    The norm runs over all dims but 0: per output channel for a Conv1d, per *input* channel for
    a ConvTranspose1d, whose weight is (in, out, k).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for g_suf, v_suf in _WEIGHT_NORM_PAIRS:
            suf = next((s for s in (g_suf, v_suf) if key == s or key.endswith("." + s)), None)
            if suf is None:
                continue
            base = key[: -len(suf)]
            g_key, v_key = base + g_suf, base + v_suf
            missing = [k for k in (g_key, v_key) if k not in state]
            if missing:
                raise VoiceModelError(
                    f"{what}: missing tensor {missing[0]} (half of a weight-norm pair)"
                )
            if key == g_key:
                g, v = state[g_key].double(), state[v_key].double()
                if g.numel() != v.shape[0]:
                    raise VoiceModelError(
                        f"{what}: {g_key} has shape {tuple(g.shape)}, which does not fit "
                        f"{v_key} {tuple(v.shape)}"
                    )
                dims = tuple(range(1, v.dim()))
                norm = v.pow(2).sum(dim=dims, keepdim=True).sqrt()
                out[base + "weight"] = (v * (g.reshape(norm.shape) / norm)).float()
            break
        else:
            out[key] = value.float() if value.is_floating_point() else value
    return out


def _flag(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise VoiceModelError(f"{what} is {value!r}, expected 0/1")


def _plain(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def describe(obj: object, path: str | Path) -> VoiceModelInfo:
    """Check a loaded file's dict and say what voice model it is (no network is built)."""
    path = Path(path)
    name = path.name
    if not isinstance(obj, Mapping):
        raise VoiceModelError(f"{name} holds a {type(obj).__name__}, not an RVC voice model")
    if "weight" not in obj:
        if "model" in obj and ("optimizer" in obj or "iteration" in obj):
            raise VoiceModelError(
                f"{name} is a training checkpoint (G_*.pth), not a voice model: export the "
                f"small model from it in RVC (ckpt processing) and load that"
            )
        found = ", ".join(sorted(str(k) for k in obj)[:12]) or "nothing"
        raise VoiceModelError(
            f"{name} is not an RVC voice model: no 'weight' entry (found: {found})"
        )
    weight = obj["weight"]
    if not isinstance(weight, Mapping) or not all(isinstance(v, Tensor) for v in weight.values()):
        raise VoiceModelError(f"{name}: 'weight' is not a dict of tensors")
    vocoder = str(obj.get("vocoder") or SUPPORTED_VOCODER)
    if vocoder != SUPPORTED_VOCODER:
        raise VoiceModelError(
            f"{name} uses the {vocoder} vocoder; voicegui runs RVC models with the standard "
            f"{SUPPORTED_VOCODER} vocoder only (retrain or re-export it with HiFi-GAN)"
        )
    if "config" not in obj:
        raise VoiceModelError(f"{name}: no 'config' entry (the synthesizer's hyper-parameters)")
    emb = weight.get("enc_p.emb_phone.weight")
    if emb is None or emb.dim() != 2:
        raise VoiceModelError(f"{name}: missing tensor enc_p.emb_phone.weight (the feature input)")
    feature_dim = int(emb.shape[1])
    versions = {d: v for v, d in FEATURE_DIMS.items()}
    if feature_dim not in versions:
        raise VoiceModelError(
            f"{name}: features of width {feature_dim}; expected 256 (v1) or 768 (v2)"
        )
    stated = obj.get("version")
    version = versions[feature_dim]
    if stated is not None and str(stated) in FEATURE_DIMS and str(stated) != version:
        raise VoiceModelError(
            f"{name} says version {stated} but its feature input is {feature_dim}-d ({version})"
        )
    has_pitch = "enc_p.emb_pitch.weight" in weight
    f0 = _flag(obj["f0"], f"{name}: 'f0'") if "f0" in obj else has_pitch
    if f0 != has_pitch:
        raise VoiceModelError(
            f"{name} says f0={int(f0)} but "
            + ("has no pitch embedding (enc_p.emb_pitch.weight)" if f0 else "has a pitch embedding")
        )
    items = list(obj["config"]) if isinstance(obj["config"], list | tuple) else obj["config"]
    try:
        config = SynthConfig.from_list(items, feature_dim=feature_dim, f0=f0)
    except ConfigError as exc:
        raise VoiceModelError(f"{name}: {exc}") from exc
    emb_g = weight.get("emb_g.weight")
    if emb_g is None or emb_g.dim() != 2:
        raise VoiceModelError(f"{name}: missing tensor emb_g.weight (the speaker table)")
    # the speaker count is the table's, whatever the config says (as RVC does)
    config = _replace(config, spk_embed_dim=int(emb_g.shape[0]))
    if "sr" in obj:
        try:
            stated_rate = parse_rate(obj["sr"])
        except ConfigError as exc:
            raise VoiceModelError(f"{name}: 'sr' {exc}") from exc
        if stated_rate != config.sample_rate:
            raise VoiceModelError(
                f"{name} says sr={obj['sr']} but its config is for {config.sample_rate} Hz"
            )
    metadata = {k: obj[k] for k in _METADATA_KEYS if k in obj and _plain(obj[k])}
    return VoiceModelInfo(
        path=path,
        version=version,
        sample_rate=config.sample_rate,
        f0=f0,
        vocoder=vocoder,
        speakers=int(emb_g.shape[0]),
        config=config,
        metadata=metadata,
    )


def _replace(config: SynthConfig, **changes) -> SynthConfig:
    from dataclasses import replace

    return replace(config, **changes)


def read_voice_model_info(path: str | Path) -> VoiceModelInfo:
    return describe(read_torch_file(path), path)


def load_state(model: Synthesizer, state: Mapping[str, Tensor], what: str) -> None:
    """Copy ``state`` into ``model``: every tensor present, none left over, shapes equal."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for label, keys in (("missing tensors", missing), ("unexpected tensors", unexpected)):
        if keys:
            problems.append(f"{label}: {', '.join(keys[:12])}" + (" ..." if len(keys) > 12 else ""))
    if misshaped:
        problems.append(f"wrong shapes: {', '.join(misshaped[:12])}")
    if problems:
        raise VoiceModelError(f"{what}: " + "; ".join(problems))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise VoiceModelError(f"{what}: tensors with NaN or infinite values: {', '.join(bad[:12])}")
    with torch.no_grad():
        for k, target in own.items():
            target.copy_(state[k].to(target.dtype))


def load_voice_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Synthesizer, VoiceModelInfo]:
    """Read, check and build a voice model file: the synthesizer (float32, eval) and its info."""
    obj = read_torch_file(path)
    info = describe(obj, path)
    model = Synthesizer(info.config)
    load_state(model, fold_weight_norm(obj["weight"], Path(path).name), Path(path).name)
    return model.to(device).eval(), info
