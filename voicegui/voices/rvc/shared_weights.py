"""The weights every RVC voice shares: the content encoder (HuBERT-base / ContentVec) and the
RMVPE pitch model, kept in ``<models folder>/rvc/``.

``voicegui models download rvc`` fetches the published files (catalog entry ``[rvc]``):
``hubert_base.pt`` (fairseq checkpoint) and ``rmvpe.pt``, verified by sha256. ``voicegui models
import rvc DIR`` takes them from a folder, typically an RVC install's ``assets/``:

* the content encoder as ``hubert_base.pt`` (also found as ``hubert/hubert_base.pt``), or in the
  transformers layout ``hubert_base/`` (``config.json`` + ``pytorch_model.bin`` or
  ``model.safetensors``);
* ``rmvpe/rmvpe.pt``.

Each file is checked for the tensors its network has (read with ``torch_file``: nothing in it
runs) and, unless its sha256 is the published one, against its zip checksums; then it is copied
next to a temporary name and renamed, so an interrupted import leaves the previous install intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from voicegui import modelhub
from voicegui.modelhub import ModelError, Progress
from voicegui.voices.rvc import torch_file

NAME = "rvc"
HUBERT_FILE = "hubert_base.pt"
HUBERT_FOLDER = "hubert_base"
RMVPE_FILE = "rmvpe.pt"
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HF_EXTRAS = ("preprocessor_config.json",)
CONTENT_LABEL = "the content encoder (hubert_base.pt or hubert_base/)"
RMVPE_LABEL = "the RMVPE pitch model (rmvpe.pt)"


@dataclass(frozen=True)
class SharedWeights:
    """Where the installed shared weights are, for the voice to load."""

    hubert: Path  # hubert_base.pt (fairseq) or the hubert_base/ folder (transformers)
    rmvpe: Path

    @property
    def hubert_format(self) -> str:
        return "transformers" if self.hubert.is_dir() else "fairseq"


def folder() -> Path:
    return modelhub.model_dir(NAME)


# ---- what is installed ---------------------------------------------------------------------------
def _recorded_ok(key: str, path: Path, manifest: dict) -> str:
    if not path.is_file():
        return "missing"
    rec = manifest.get(key)
    if isinstance(rec, dict) and rec.get("size") != path.stat().st_size:
        return "changed"
    return "ok"


def _hubert_state(manifest: dict) -> tuple[str, Path | None]:
    base = folder()
    state = _recorded_ok(HUBERT_FILE, base / HUBERT_FILE, manifest)
    if state == "ok":
        return "ok", base / HUBERT_FILE
    hf = base / HUBERT_FOLDER
    weights = [w for w in HF_WEIGHTS if (hf / w).is_file()]
    if (hf / HF_CONFIG).is_file() and weights:
        key = f"{HUBERT_FOLDER}/{weights[0]}"
        hf_state = _recorded_ok(key, hf / weights[0], manifest)
        return hf_state, hf if hf_state == "ok" else None
    return state, None


def status() -> dict[str, str]:
    """'ok', 'missing' or 'changed' for the content encoder (under the published name
    hubert_base.pt, whichever layout holds it) and for rmvpe.pt."""
    manifest = modelhub.manifest(NAME)
    return {
        HUBERT_FILE: _hubert_state(manifest)[0],
        RMVPE_FILE: _recorded_ok(RMVPE_FILE, folder() / RMVPE_FILE, manifest),
    }


def missing() -> list[str]:
    """What is not (intactly) installed, in words; empty when everything is there."""
    labels = {HUBERT_FILE: CONTENT_LABEL, RMVPE_FILE: RMVPE_LABEL}
    out = []
    for key, state in status().items():
        if state != "ok":
            out.append(labels[key] + (" is damaged" if state == "changed" else ""))
    return out


def installed_files() -> SharedWeights:
    """The installed shared weights; ``ModelError`` names what is missing."""
    _, hubert = _hubert_state(modelhub.manifest(NAME))
    rmvpe = folder() / RMVPE_FILE
    lacking = missing()
    if lacking or hubert is None:
        raise ModelError(
            "the RVC shared weights are not installed: lacking "
            + ", ".join(lacking)
            + ". Run `voicegui models download rvc`, or `voicegui models import rvc DIR` with "
            "an RVC install's assets/ folder"
        )
    return SharedWeights(hubert, rmvpe)


# ---- structural checks -----------------------------------------------------------------------
def _require(keys: set[str], needles: tuple[str, ...], what: str, path: Path) -> None:
    lacking = [n for n in needles if not any(n in k for k in keys)]
    if lacking:
        raise ModelError(f"{path} is not {what}: it has no {', '.join(lacking)} tensors")


def _read(path: Path, strict: bool) -> torch_file.TorchFile:
    try:
        return torch_file.read(path, strict=strict)
    except torch_file.TorchFileError as exc:
        raise ModelError(f"{path} cannot be used: {exc}") from exc


def check_rmvpe(path: Path) -> None:
    tensors = _read(path, strict=True).tensors()
    _require(set(tensors), ("unet.encoder.", "cnn.", "fc.1.weight"), "an RMVPE model", path)
    out = tensors.get("fc.1.weight")
    if out is not None and out.shape[:1] != (360,):
        raise ModelError(f"{path} is not an RMVPE model: its output has {out.shape[0]} bins")


HUBERT_NEEDLES = ("feature_extractor.conv_layers.0", "encoder.layers.", "final_proj.weight")


def check_fairseq_hubert(path: Path) -> None:
    # a fairseq checkpoint also holds its training arguments (argparse, omegaconf objects):
    # read leniently, those become inert records
    obj = _read(path, strict=False).obj
    model = obj.get("model") if isinstance(obj, dict) else None
    keys = set(torch_file.state_dict(model))
    if not keys:
        raise ModelError(f"{path} is not a fairseq HuBERT/ContentVec checkpoint (no 'model')")
    _require(keys, HUBERT_NEEDLES, "a HuBERT/ContentVec model", path)


def check_transformers_hubert(path: Path) -> Path:
    """``path``: a hubert_base/ folder; returns its weights file."""
    try:
        config = json.loads((path / HF_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path / HF_CONFIG} cannot be read: {exc}") from exc
    if not isinstance(config, dict) or config.get("model_type") != "hubert":
        raise ModelError(f"{path / HF_CONFIG} does not describe a HuBERT model")
    for name in HF_WEIGHTS:
        weights = path / name
        if weights.is_file():
            if name.endswith(".safetensors"):
                keys = _safetensors_keys(weights)
            else:
                keys = set(_read(weights, strict=True).tensors())
            _require(keys, HUBERT_NEEDLES, "a HuBERT/ContentVec model", weights)
            return weights
    raise ModelError(f"{path} has {HF_CONFIG} but no {' or '.join(HF_WEIGHTS)}")


def _safetensors_keys(path: Path) -> set[str]:
    """Tensor names from a safetensors header (8-byte length, then JSON)."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100 << 20:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if 8 + n + max(ends, default=0) > path.stat().st_size:
            raise ValueError("the file is truncated")
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise ModelError(f"{path} cannot be used: {exc}") from exc
    return {k for k in header if k != "__metadata__"}


# ---- import ----------------------------------------------------------------------------------
def _by_depth(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (len(p.parts), str(p)))


def find_in(source: Path) -> tuple[Path | None, Path | None]:
    """(content encoder, rmvpe.pt) under ``source``: the shallowest of each."""
    fairseq = [p for p in source.rglob(HUBERT_FILE) if p.is_file()]
    hf = [
        p.parent
        for p in source.rglob(HF_CONFIG)
        if any((p.parent / w).is_file() for w in HF_WEIGHTS) and _is_hubert_config(p)
    ]
    content = _by_depth(fairseq + hf)
    rmvpe = _by_depth([p for p in source.rglob(RMVPE_FILE) if p.is_file()])
    return (content[0] if content else None), (rmvpe[0] if rmvpe else None)


def _is_hubert_config(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "hubert"


def import_dir(source: Path, progress: Progress | None = None) -> Path:
    """Copy the shared weights found under ``source`` (see the module docstring); what is found
    is imported when the rest is already installed, otherwise ``ModelError`` names what lacks."""
    source = Path(source)
    if not source.is_dir():
        raise ModelError(f"{source} is not a folder")
    content, rmvpe = find_in(source)
    now = status()
    lacking = []
    if content is None and now[HUBERT_FILE] != "ok":
        lacking.append(f"{HUBERT_FILE} or {HUBERT_FOLDER}/ ({HF_CONFIG} + {HF_WEIGHTS[1]})")
    if rmvpe is None and now[RMVPE_FILE] != "ok":
        lacking.append(f"{RMVPE_FILE} (in rmvpe/ in an RVC install)")
    if lacking or (content is None and rmvpe is None):
        raise ModelError(
            f"{source} lacks: {', '.join(lacking) or 'the RVC shared weights'}. Point to the "
            "assets/ folder of an RVC install, or download them: `voicegui models download rvc`"
        )
    # check everything before copying anything
    hf_weights = None
    if content is not None:
        if content.is_dir():
            hf_weights = check_transformers_hubert(content)
        else:
            check_fairseq_hubert(content)
    if rmvpe is not None:
        check_rmvpe(rmvpe)
    target = folder()
    target.mkdir(parents=True, exist_ok=True)
    catalog = _published()
    if rmvpe is not None:
        _install(rmvpe, target / RMVPE_FILE, RMVPE_FILE, catalog, progress)
    if content is not None and hf_weights is None:
        _install(content, target / HUBERT_FILE, HUBERT_FILE, catalog, progress)
        shutil.rmtree(target / HUBERT_FOLDER, ignore_errors=True)  # one layout at a time
    elif content is not None and hf_weights is not None:
        _install_folder(content, hf_weights, target, catalog, progress)
    return target


def _published() -> dict[str, str]:
    try:
        e = modelhub.entry(NAME)
    except ModelError:
        return {}
    return {f.local_name: f.sha256 for f in e.files if f.sha256}


def _install(
    src: Path, dst: Path, key: str, catalog: dict[str, str], progress: Progress | None
) -> None:
    if src.resolve() == dst.resolve():
        digest = modelhub.sha256_of(dst, progress)
    else:
        tmp = dst.with_name(f".incoming-{uuid.uuid4().hex}-{dst.name}")
        try:
            digest = _copy_hashed(src, tmp, progress)
            if digest != catalog.get(key):
                _verify_zip(tmp, src, progress)
            os.replace(tmp, dst)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    modelhub.record(
        NAME, key, dst, digest, source=str(src), published=str(digest == catalog.get(key))
    )


def _install_folder(
    src: Path, weights: Path, target: Path, catalog: dict[str, str], progress: Progress | None
) -> None:
    tmp = target / f".incoming-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        digests = {}
        for f in [src / HF_CONFIG, weights] + [src / x for x in HF_EXTRAS if (src / x).is_file()]:
            digests[f.name] = _copy_hashed(f, tmp / f.name, progress)
        _verify_zip(tmp / weights.name, weights, progress)
        final = target / HUBERT_FOLDER
        old = target / f".incoming-{uuid.uuid4().hex}"
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        (target / HUBERT_FILE).unlink()  # one layout at a time
    for name, digest in digests.items():
        modelhub.record(NAME, f"{HUBERT_FOLDER}/{name}", final / name, digest, source=str(src))


def _verify_zip(path: Path, shown: Path, progress: Progress | None) -> None:
    try:
        torch_file.verify_archive(path, progress, shown.name)
    except torch_file.TorchFileError as exc:
        raise ModelError(f"{shown} cannot be used: {exc}") from exc


def _copy_hashed(src: Path, dst: Path, progress: Progress | None) -> str:
    h = hashlib.sha256()
    total, done = src.stat().st_size, 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(1 << 20):
            h.update(chunk)
            fout.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(f"copying {src.name}", done, total)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()
