"""Voice model files the way users have them, built from the kit's checkpoints or its init rule:
no-pitch models, Applio's files (extra metadata, parametrization key names, other vocoders),
other rates, and damaged copies."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from voicegui.voices.rvc.config import SynthConfig
from voicegui.voices.rvc.synthesizer import Synthesizer

PITCH_ONLY = ("enc_p.emb_pitch.", "dec.m_source.", "dec.noise_convs.")
# The layers RVC trains with weight norm (stored as weight_g / weight_v)
WEIGHT_NORMED = re.compile(
    r"^(dec\.ups\.\d+|dec\.resblocks\.\d+\.convs[12]?\.\d+"
    r"|flow\.flows\.\d+\.enc\.(in_layers\.\d+|res_skip_layers\.\d+|cond_layer))\.weight$"
)
# Upstream's 18-item config lists for the rates the kit does not ship (configs/v1, configs/v2)
_RB = [[3, 7, 11], [[1, 3, 5], [1, 3, 5], [1, 3, 5]]]
UPSTREAM_CONFIGS = {
    ("v2", 32000): [1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", *_RB, [10, 8, 2, 2], 512,
                    [20, 16, 4, 4], 109, 256, 32000],
    ("v1", 32000): [513, 32, 192, 192, 768, 2, 6, 3, 0, "1", *_RB, [10, 4, 2, 2, 2], 512,
                    [16, 16, 4, 4, 4], 109, 256, 32000],
    ("v1", 48000): [1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", *_RB, [10, 6, 2, 2, 2], 512,
                    [16, 16, 4, 4, 4], 109, 256, 48000],
}  # fmt: skip


def load_raw(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def save(obj: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def without_pitch(obj: dict) -> dict:
    """The no-pitch variant (SynthesizerTrnMs*NSFsid_nono): the same file without the pitch
    embedding, the sine source and its noise convs, f0 = 0."""
    out = OrderedDict(obj)
    out["weight"] = OrderedDict(
        (k, v) for k, v in obj["weight"].items() if not k.startswith(PITCH_ONLY)
    )
    out["f0"] = 0
    return out


def applio_style(obj: dict, vocoder: str = "HiFi-GAN", parametrizations: bool = True) -> dict:
    """What Applio writes: f0 as a bool, its metadata keys, and (for its own architecture) the
    weight norm under torch's parametrization names."""
    weight = OrderedDict()
    for k, v in obj["weight"].items():
        if parametrizations:
            k = k.replace(".weight_g", ".parametrizations.weight.original0")
            k = k.replace(".weight_v", ".parametrizations.weight.original1")
        weight[k] = v
    out = OrderedDict(weight=weight, config=obj["config"])
    out.update(
        epoch=200,
        step=4000,
        sr=obj["sr"],
        f0=bool(obj["f0"]),
        version=obj["version"],
        creation_date="2025-01-02T03:04:05.123456",
        model_hash="0" * 64,
        overtrain_info="None",
        dataset_length=None,
        model_name="Ünïcode voice",
        author="someone",
        embedder_model="contentvec",
        speakers_id=1,
        vocoder=vocoder,
    )
    return out


def _kit_init(kit: Path):
    spec = importlib.util.spec_from_file_location(
        "rvc_kit_make_checkpoints", kit / "make_checkpoints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_model(kit: Path, stem: str, version: str, rate: int, f0: bool = True) -> dict:
    """A voice model file for one of UPSTREAM_CONFIGS with weights from the kit's init rule
    (component name ``stem``), in upstream's key layout and fp16."""
    make = _kit_init(kit)
    items = UPSTREAM_CONFIGS[(version, rate)]
    dim = 256 if version == "v1" else 768
    model = Synthesizer(SynthConfig.from_list(items, feature_dim=dim, f0=f0))
    weight = OrderedDict()
    for key, t in model.state_dict().items():
        if WEIGHT_NORMED.match(key):
            base = key[: -len("weight")]
            g_shape = [t.shape[0]] + [1] * (t.dim() - 1)
            for suffix, shape in (("weight_g", g_shape), ("weight_v", list(t.shape))):
                full = f"{stem}.{base}{suffix}"
                weight[base + suffix] = make.make_tensor(
                    full, shape, "float16", make.DEFAULT_BASE_SEED
                )
        else:
            weight[key] = make.make_tensor(
                f"{stem}.{key}", list(t.shape), "float16", make.DEFAULT_BASE_SEED
            )
    return OrderedDict(
        weight=weight,
        config=items,
        info="1epoch",
        sr=f"{rate // 1000}k",
        f0=int(f0),
        version=version,
    )


class CommandPayload:
    """An object whose unpickling runs ``touch marker``: what a malicious voice file holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def unsafe_pth(path: Path, marker: Path) -> Path:
    """A .pth (torch's zip layout) whose pickle would run ``touch marker`` if loaded."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"weight": CommandPayload(marker)}, protocol=2))
        z.writestr("evil/version", "3\n")
    return path
