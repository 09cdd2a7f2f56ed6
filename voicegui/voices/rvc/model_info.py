"""What an RVC voice file is: version, sample rate, pitch guidance, read from the file itself.

Light on purpose (no torch, no onnx, no faiss): the window lists the voice library with it.

* ``.pth``: RVC's exported voice, ``{'weight': state dict, 'config': [18 items], 'sr', 'f0',
  'version', 'info'}``, plus Applio's extra keys (``vocoder``, ``embedder_model``, ``model_name``,
  ``author``, ``epoch``, ...). Read with ``torch_file`` (no code in the file runs). The answers
  come from the tensors where they can (the content layer's width gives v1 256-d / v2 768-d, a
  pitch embedding means f0, the decoder's upsampling times 100 gives the rate) and are checked
  against what the file's keys claim.
* ``.onnx``: RVC's own export (inputs ``phone``/``pitch``/``pitchf``/``ds``/``rnd``) or the
  w-okada/deiteris layout (``feats``/``p_len``/``pitch``/``pitchf``/``sid`` and a JSON
  ``metadata`` entry with ``samplingRate``, ``f0``, ``embChannels``, ...). Read with ``onnx_file``.
* ``.index``: a faiss index of content features; its header gives the vector size and count.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicegui.voices.rvc import onnx_file, torch_file
from voicegui.voices.rvc.torch_file import TensorStub

MODEL_SUFFIXES = (".pth", ".onnx")
INDEX_SUFFIX = ".index"
VERSIONS = {256: "v1", 768: "v2"}  # content-feature width -> RVC version
HOP_SECONDS = 0.01  # every RVC synthesizer makes one feature frame per 10 ms of output
SUPPORTED_VOCODERS = ("HiFi-GAN",)  # RVC's NSF HiFi-GAN; Applio also writes others


@dataclass(frozen=True)
class ModelInfo:
    """One voice file as listed. ``error`` is empty when the file can be used."""

    path: Path
    kind: str  # 'pth' or 'onnx'
    size: int
    version: str = ""  # 'v1' or 'v2'
    feature_dim: int = 0  # 256 (v1) or 768 (v2)
    sample_rate: int = 0
    f0: bool | None = None  # pitch guidance
    vocoder: str = ""
    speakers: int = 0
    details: tuple[tuple[str, str], ...] = ()  # name, value: shown as a tooltip
    warnings: tuple[str, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def summary(self) -> str:
        """'v2 (768-d) · 48 kHz · f0' or the error."""
        if self.error:
            return self.error
        parts = [f"{self.version} ({self.feature_dim}-d)", f"{self.sample_rate / 1000:g} kHz"]
        parts.append("f0" if self.f0 else "no f0")
        return " · ".join(parts)


@dataclass(frozen=True)
class IndexInfo:
    path: Path
    size: int
    dim: int = 0
    vectors: int = 0
    kind: str = ""  # faiss's four-character code, e.g. 'IwFl' (IVF, flat)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class _Refused(Exception):
    """A file that is readable but not a usable RVC voice; the message says why."""


def read_model_info(path: str | Path) -> ModelInfo:
    """Describe a voice file; never raises for a bad file (``error`` says what is wrong)."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        size = path.stat().st_size
    except OSError as exc:
        return ModelInfo(path, kind, 0, error=f"cannot be read: {exc.strerror or exc}")
    try:
        if kind == "onnx":
            return _onnx_info(path, size)
        if kind == "pth":
            return _pth_info(path, size)
        return ModelInfo(path, kind, size, error="not a voice model (.pth or .onnx)")
    except _Refused as exc:
        return ModelInfo(path, kind, size, error=str(exc))
    except (torch_file.TorchFileError, onnx_file.OnnxFileError) as exc:
        return ModelInfo(path, kind, size, error=f"cannot be read: {exc}")
    except OSError as exc:
        return ModelInfo(path, kind, size, error=f"cannot be read: {exc.strerror or exc}")


# ---- .pth --------------------------------------------------------------------------------------
def _pth_info(path: Path, size: int) -> ModelInfo:
    tf = torch_file.read(path, strict=True)
    ckpt = tf.obj
    if not isinstance(ckpt, dict):
        raise _Refused(f"holds a {type(ckpt).__name__}, not an RVC voice model")
    weight = ckpt.get("weight")
    if not isinstance(weight, dict):
        if "model" in ckpt and ("optimizer" in ckpt or "iteration" in ckpt):
            raise _Refused(
                "a training checkpoint (G_/D_*.pth), not a voice model: export the voice with "
                "RVC first (its .pth in assets/weights)"
            )
        raise _Refused("not an RVC voice model (it has no 'weight' table)")
    tensors = torch_file.state_dict(weight)
    phone = tensors.get("enc_p.emb_phone.weight")
    if phone is None or len(phone.shape) != 2:
        raise _Refused("not an RVC voice model (no content-feature layer enc_p.emb_phone)")
    dim = phone.shape[1]
    derived = VERSIONS.get(dim)
    if derived is None:
        raise _Refused(f"takes {dim}-d content features: neither RVC v1 (256) nor v2 (768)")
    claimed = ckpt.get("version", "v1")  # upstream reads a missing version as v1
    if claimed not in VERSIONS.values():
        raise _Refused(f"unknown RVC version {str(claimed)[:20]!r}")
    if claimed != derived:
        raise _Refused(f"says {claimed} but its content layer takes {dim}-d features ({derived})")
    has_pitch = "enc_p.emb_pitch.weight" in tensors
    f0 = _flag(ckpt.get("f0"), has_pitch)
    if f0 != has_pitch:
        raise _Refused(
            f"says f0={ckpt.get('f0')!r} but "
            + ("has" if has_pitch else "lacks")
            + " the pitch embedding"
        )
    config = ckpt.get("config")
    if not isinstance(config, list | tuple) or len(config) != 18:
        what = "no 'config'" if config is None else f"a config of {_length(config)} items"
        raise _Refused(f"has {what}; an RVC voice has 18")
    rate = config[-1]
    rates = config[12]
    if not isinstance(rate, int) or rate <= 0 or not _ints(rates):
        raise _Refused("its config is damaged (sample rate or upsampling)")
    hop = math.prod(rates)
    if hop != round(rate * HOP_SECONDS):
        raise _Refused(
            f"its decoder upsamples {hop}x, which does not fit its sample rate {rate} Hz"
        )
    warnings = []
    sr_key = _rate_of(ckpt.get("sr"))
    if sr_key and sr_key != rate:
        warnings.append(f"its 'sr' key says {ckpt.get('sr')} but its config {rate} Hz")
    vocoder = str(ckpt.get("vocoder") or "HiFi-GAN")
    if vocoder not in SUPPORTED_VOCODERS:
        raise _Refused(
            f"uses the {vocoder} vocoder; only HiFi-GAN (RVC's own) voices are supported"
        )
    embedder = ckpt.get("embedder_model")
    if isinstance(embedder, str) and embedder.lower() not in ("", "contentvec", "hubert_base"):
        warnings.append(
            f"trained on {embedder} content features; voicegui computes ContentVec "
            "(hubert_base), so it may sound off"
        )
    speakers = tensors.get("emb_g.weight")
    details = [("format", f"PyTorch ({tf.format}), {_dtype(tensors)} weights")]
    for key in ("model_name", "info", "epoch", "step", "author", "creation_date", "embedder_model"):
        value = ckpt.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            details.append((key.replace("_", " "), str(value)[:200]))
    return ModelInfo(
        path,
        "pth",
        size,
        version=derived,
        feature_dim=dim,
        sample_rate=rate,
        f0=f0,
        vocoder=vocoder,
        speakers=speakers.shape[0] if speakers is not None and speakers.shape else 0,
        details=tuple(details),
        warnings=tuple(warnings),
    )


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool | int):
        return bool(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    raise _Refused(f"its f0 flag {str(value)[:20]!r} is neither 0 nor 1")


def _rate_of(value: Any) -> int:
    """'40k' -> 40000; 48000 -> 48000; anything else -> 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)
        except ValueError:
            return 0
    return 0


def _ints(values: Any) -> bool:
    return (
        isinstance(values, list | tuple)
        and bool(values)
        and all(isinstance(v, int) and v > 0 for v in values)
    )


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


def _dtype(tensors: dict[str, TensorStub]) -> str:
    kinds = sorted({t.dtype for t in tensors.values() if t.dtype.startswith(("float", "bfloat"))})
    return "/".join(kinds) or "no float"


# ---- .onnx -------------------------------------------------------------------------------------
def _onnx_info(path: Path, size: int) -> ModelInfo:
    s = onnx_file.read(path)
    meta = _metadata_json(s.metadata)
    content = s.inputs.get("feats", s.inputs.get("phone"))
    if content is None:
        raise _Refused(
            "not an RVC voice model (no 'feats' or 'phone' input; inputs: "
            + (", ".join(s.inputs) or "none")
            + ")"
        )
    dim = content[-1] if content and isinstance(content[-1], int) else 0
    meta_dim = _meta_int(meta, "embChannels")
    if dim and meta_dim and dim != meta_dim:
        raise _Refused(f"its metadata says {meta_dim}-d features but its graph takes {dim}-d")
    dim = dim or meta_dim
    version = VERSIONS.get(dim)
    if version is None:
        raise _Refused(
            f"takes {dim}-d content features: neither RVC v1 (256) nor v2 (768)"
            if dim
            else "its content-feature size is not stated"
        )
    has_pitch = "pitch" in s.inputs and "pitchf" in s.inputs
    if "f0" in meta and bool(meta["f0"]) != has_pitch:
        raise _Refused(
            f"its metadata says f0={meta['f0']!r} but its graph "
            + ("takes" if has_pitch else "lacks")
            + " pitch inputs"
        )
    graph_rate = round(math.prod(s.transpose_strides) / HOP_SECONDS) if s.transpose_strides else 0
    meta_rate = _meta_int(meta, "samplingRate")
    if graph_rate and meta_rate and graph_rate != meta_rate:
        raise _Refused(
            f"its metadata says {meta_rate} Hz but its decoder upsamples to {graph_rate} Hz"
        )
    rate = meta_rate or graph_rate
    if not rate:
        raise _Refused("its sample rate is neither stated nor visible in its graph")
    layout = "w-okada/deiteris" if "feats" in s.inputs else "RVC"
    details = [("format", f"ONNX ({layout} layout), opset {s.opset or '?'}")]
    if s.producer:
        details.append(("exported by", s.producer))
    for key in ("modelType", "version", "embedder", "embOutputLayer"):
        if key in meta:
            details.append((key, str(meta[key])[:100]))
    warnings = []
    embedder = meta.get("embedder")
    if isinstance(embedder, str) and embedder.lower() not in ("", "hubert_base", "contentvec"):
        warnings.append(f"trained on {embedder} content features; voicegui computes ContentVec")
    return ModelInfo(
        path,
        "onnx",
        size,
        version=version,
        feature_dim=dim,
        sample_rate=rate,
        f0=has_pitch,
        vocoder="HiFi-GAN",
        details=tuple(details),
        warnings=tuple(warnings),
    )


def _metadata_json(props: dict[str, str]) -> dict[str, Any]:
    text = props.get("metadata")
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _Refused(f"its metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise _Refused("its metadata is not a JSON object")
    return meta


def _meta_int(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Refused(f"its metadata {key} {value!r} is not a number")
    try:
        return int(value)
    except ValueError as exc:
        raise _Refused(f"its metadata {key} {value!r} is not a number") from exc


# ---- .index ------------------------------------------------------------------------------------
_INDEX_HEADER = struct.Struct("<4siq")  # fourcc, d (int32), ntotal (int64), little-endian
FLAT_CODES = ("IwFl", "IxFI", "IxF2", "IxFl")  # IVF-flat and flat indexes: raw float32 vectors


def read_index_info(path: str | Path) -> IndexInfo:
    """Vector size and count from a faiss index's header; ``error`` for anything else."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_INDEX_HEADER.size)
    except OSError as exc:
        return IndexInfo(path, 0, error=f"cannot be read: {exc.strerror or exc}")
    if len(head) < _INDEX_HEADER.size:
        return IndexInfo(path, size, error="not a faiss index (too short)")
    fourcc, dim, count = _INDEX_HEADER.unpack(head)
    code = fourcc.decode("ascii", errors="replace")
    if not (code[:1] == "I" and code.isalnum()) or not 0 < dim <= 65536 or count < 0:
        return IndexInfo(path, size, error="not a faiss index")
    if code in FLAT_CODES and count * dim * 4 > size:  # flat lists store every float32 vector
        return IndexInfo(path, size, dim, count, code, error="the index is damaged or truncated")
    return IndexInfo(path, size, dim, count, code)


def index_fits(model: ModelInfo, index: IndexInfo) -> str:
    """'' when the index can serve the model, else why not."""
    if not index.ok:
        return index.error
    if model.feature_dim and index.dim != model.feature_dim:
        return (
            f"the index holds {index.dim}-d features but the model is {model.version} "
            f"({model.feature_dim}-d)"
        )
    return ""
