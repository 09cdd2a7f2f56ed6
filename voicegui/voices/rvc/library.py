"""The user's RVC voice library: voice models copied into the models folder, one folder each.

::

    <models folder>/rvc-voices/
        Alice/                 the voice's name (any language; made unique on import)
            alice_e200.pth     the model as imported (.pth or .onnx), under its own file name
            added_IVF….index   its retrieval index, when it has one
            voice.json         {"pitch": semitones}: the voice's default pitch shift

An import is written into a hidden ``.incoming-*`` folder, synced, then renamed into place, so
a full disk or a crash never leaves a half-written voice in the list; the files are checked
(metadata read, zip checksums verified, index width against the model's) before they count.
Listing reads only file headers (no torch). ``resolve`` turns a setting (a library name or a path)
into files for the voice to load.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from voicegui import paths
from voicegui.voices.rvc import torch_file
from voicegui.voices.rvc.model_info import (
    INDEX_SUFFIX,
    MODEL_SUFFIXES,
    IndexInfo,
    ModelInfo,
    index_fits,
    read_index_info,
    read_model_info,
)

Progress = Callable[[str, int, int], None]
FOLDER = "rvc-voices"
SETTINGS_FILE = "voice.json"
INCOMING = ".incoming-"
PITCH_RANGE = (-24.0, 24.0)  # semitones, as the Pitch setting
SPACE_MARGIN = 1 << 20  # bytes kept free beyond the files themselves
CHUNK = 1 << 20
_FORBIDDEN = '<>:"/\\|?*'  # not allowed in a file name on Windows (and '/' anywhere)
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}


class LibraryError(RuntimeError):
    """An import, removal or lookup that cannot be done; the message says why for the user."""


@dataclass(frozen=True)
class VoiceModel:
    """One entry of the library."""

    name: str
    folder: Path
    model: Path | None
    index: Path | None
    info: ModelInfo | None
    index_info: IndexInfo | None
    pitch: float  # default pitch shift in semitones
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def size(self) -> int:
        """Bytes on disk: the model and its index."""
        return sum(i.size for i in (self.info, self.index_info) if i is not None)

    @property
    def has_index(self) -> bool:
        return self.index is not None


def library_dir() -> Path:
    path = paths.models_dir() / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- listing ---------------------------------------------------------------------------------
def list_models() -> list[VoiceModel]:
    """Every voice in the library, by name; a damaged or unknown one carries an ``error``."""
    root = library_dir()
    _sweep_incoming(root)
    out = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            out.append(_entry(folder))
        except OSError as exc:  # an unreadable folder is listed, not fatal
            why = f"cannot be read: {exc.strerror or exc}"
            out.append(VoiceModel(folder.name, folder, None, None, None, None, 0.0, why))
    return sorted(out, key=lambda m: m.name.casefold())


def names() -> list[str]:
    return [m.name for m in list_models()]


def get(name: str) -> VoiceModel:
    folder = _folder_of(name)
    if folder is None:
        raise LibraryError(_unknown(name))
    return _entry(folder)


def _folder_of(name: str) -> Path | None:
    if not name or name.startswith(".") or any(c in _FORBIDDEN for c in name):
        return None
    folder = library_dir() / name
    if folder.is_dir():
        return folder
    wanted = _key(name)  # the same name typed with another Unicode form or case
    for other in library_dir().iterdir():
        if other.is_dir() and not other.name.startswith(".") and _key(other.name) == wanted:
            return other
    return None


def _entry(folder: Path) -> VoiceModel:
    models = sorted(p for p in folder.iterdir() if p.suffix.lower() in MODEL_SUFFIXES)
    indexes = sorted(p for p in folder.iterdir() if p.suffix.lower() == INDEX_SUFFIX)
    pitch, settings_error = _read_pitch(folder)
    model = models[0] if len(models) == 1 else None
    index = indexes[0] if len(indexes) == 1 else None
    info = read_model_info(model) if model is not None else None
    index_info = read_index_info(index) if index is not None else None
    if not models:
        error = "the folder holds no .pth or .onnx model"
    elif len(models) > 1:
        error = "the folder holds several models: " + ", ".join(p.name for p in models)
    elif info is not None and info.error:
        error = f"{model.name}: {info.error}"
    elif len(indexes) > 1:
        error = "the folder holds several indexes: " + ", ".join(p.name for p in indexes)
    elif info is not None and index_info is not None and index_fits(info, index_info):
        error = f"{index.name}: {index_fits(info, index_info)}"
    else:
        error = settings_error
    return VoiceModel(folder.name, folder, model, index, info, index_info, pitch, error)


def _read_pitch(folder: Path) -> tuple[float, str]:
    path = folder / SETTINGS_FILE
    if not path.exists():
        return 0.0, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pitch = float(data.get("pitch", 0.0)) if isinstance(data, dict) else float("nan")
    except (OSError, ValueError, TypeError) as exc:
        return 0.0, f"{SETTINGS_FILE} cannot be read ({exc}); the default pitch is 0"
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        return 0.0, f"{SETTINGS_FILE}: the default pitch {pitch} is out of range; using 0"
    return pitch, ""


# ---- importing -------------------------------------------------------------------------------
def import_model(
    model: str | Path,
    index: str | Path | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    pitch: float = 0.0,
) -> VoiceModel:
    """Copy a ``.pth``/``.onnx`` voice (and its ``.index``) into the library under ``name``
    (default: the model's file name; made unique). Nothing is added when anything fails."""
    model = Path(model)
    info = _checked_model(model)
    index_path = Path(index) if index else None
    if index_path is not None:
        _checked_index(index_path, info)
    _check_pitch(pitch)
    root = library_dir()
    base = _safe_name(name if name else model.stem)
    if not base:
        raise LibraryError(f"'{name}' cannot be used as a voice name")
    sources = [model] + ([index_path] if index_path is not None else [])
    _ensure_space(root, sum(p.stat().st_size for p in sources), model.name)
    incoming = root / f"{INCOMING}{uuid.uuid4().hex}"
    incoming.mkdir()
    try:
        copied = [_copy(src, incoming / src.name, progress) for src in sources]
        _verify_copy(copied[0], progress)
        _write_json(incoming / SETTINGS_FILE, {"pitch": float(pitch)})
        final = _publish(incoming, root, base)
    except BaseException as exc:
        shutil.rmtree(incoming, ignore_errors=True)
        if isinstance(exc, OSError):
            raise LibraryError(_write_failure(exc, model.name, root)) from exc
        raise
    return _entry(final)


def _verify_copy(path: Path, progress: Progress | None) -> None:
    """Every byte of a copied .pth against its zip checksums (a damaged download)."""
    if path.suffix.lower() != ".pth":
        return
    try:
        torch_file.verify_archive(path, progress)
    except torch_file.TorchFileError as exc:
        raise LibraryError(f"{path.name} was not imported: {exc}") from exc


def set_index(name: str, index: str | Path | None, progress: Progress | None = None) -> VoiceModel:
    """Give a library voice its ``.index`` (replacing one it had), or take it away (None)."""
    entry = get(name)
    old = [p for p in entry.folder.iterdir() if p.suffix.lower() == INDEX_SUFFIX]
    if index is None:
        for p in old:
            p.unlink()
        return _entry(entry.folder)
    index = Path(index)
    if entry.info is None or not entry.info.ok:
        raise LibraryError(f"'{entry.name}' is damaged ({entry.error}); import it again first")
    _checked_index(index, entry.info)
    _ensure_space(entry.folder, index.stat().st_size, index.name)
    tmp = entry.folder / f"{INCOMING}{uuid.uuid4().hex}{INDEX_SUFFIX}.part"
    try:
        _copy(index, tmp, progress)
        for p in old:
            p.unlink()
        os.replace(tmp, entry.folder / index.name)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise LibraryError(_write_failure(exc, index.name, entry.folder)) from exc
        raise
    return _entry(entry.folder)


def _checked_model(model: Path) -> ModelInfo:
    if not model.is_file():
        raise LibraryError(f"{model} is not a file")
    if model.suffix.lower() not in MODEL_SUFFIXES:
        raise LibraryError(f"{model.name} is not an RVC voice model (.pth or .onnx)")
    info = read_model_info(model)
    if info.error:
        raise LibraryError(f"{model.name} was not imported: {info.error}")
    return info


def _checked_index(index: Path, info: ModelInfo) -> IndexInfo:
    if not index.is_file():
        raise LibraryError(f"{index} is not a file")
    if index.suffix.lower() != INDEX_SUFFIX:
        raise LibraryError(f"{index.name} is not a retrieval index (.index)")
    index_info = read_index_info(index)
    why = index_fits(info, index_info)
    if why:
        raise LibraryError(f"{index.name} cannot be used with {info.path.name}: {why}")
    return index_info


def _ensure_space(folder: Path, needed: int, what: str) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed + SPACE_MARGIN:
        raise LibraryError(
            f"Not enough disk space to import {what}: it needs {_mb(needed)}, "
            f"{_mb(free)} is free in {folder}. Nothing was imported."
        )


def _write_failure(exc: OSError, what: str, folder: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"The disk filled up while importing {what} ({exc.strerror}); nothing was imported "
            f"into {folder}. Free some space and try again."
        )
    return f"Importing {what} failed: {exc.strerror or exc} ({exc.filename or folder})"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _copy(src: Path, dst: Path, progress: Progress | None) -> Path:
    """Copy with progress, then fsync: the bytes are on the disk before the file counts."""
    total, done = src.stat().st_size, 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(f"copying {src.name}", done, total)
        fout.flush()
        os.fsync(fout.fileno())
    if dst.stat().st_size != total:
        raise LibraryError(f"{src.name} changed while it was copied; try again")
    return dst


def _publish(incoming: Path, root: Path, base: str) -> Path:
    """Rename the finished folder to the first free name: 'Alice', 'Alice (2)', ..."""
    taken = {_key(p.name) for p in root.iterdir()}
    for n in range(1, 10000):
        name = base if n == 1 else f"{base} ({n})"
        if _key(name) in taken:
            continue
        final = root / name
        try:
            os.rename(incoming, final)  # fails if another import took the name meanwhile
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or final.exists():
                taken.add(_key(name))
                continue
            raise
        _fsync_dir(root)
        return final
    raise LibraryError(f"too many voices named '{base}'")


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sweep_incoming(root: Path, older_than: float = 3600.0) -> None:
    """Leftovers of an import that a crash or power cut interrupted."""
    now = time.time()
    for p in root.iterdir():
        if p.name.startswith(INCOMING):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > older_than:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()


def _safe_name(name: str) -> str:
    """A folder name that works on every OS; keeps any language's letters."""
    name = unicodedata.normalize("NFC", str(name))
    name = "".join("_" if c in _FORBIDDEN or ord(c) < 32 else c for c in name)
    name = name.strip().rstrip(".").strip()
    if name.startswith("."):
        name = "_" + name[1:]
    if name.split(".")[0].lower() in _RESERVED:
        name = "_" + name
    return name[:120]


def _key(name: str) -> str:
    """Names that the file system may treat as the same (case, Unicode form) collide."""
    return unicodedata.normalize("NFC", name).casefold()


def _unknown(name: str) -> str:
    have = names()
    listing = ", ".join(have) if have else "none yet"
    return (
        f"no RVC voice '{name}' in the library (it has: {listing}); import one with "
        "`voicegui rvc import FILE.pth` or give the path of a .pth/.onnx file"
    )


# ---- per-voice settings, removal ---------------------------------------------------------------
def _check_pitch(pitch: float) -> None:
    if not isinstance(pitch, int | float) or not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise LibraryError(
            f"the default pitch must be between {PITCH_RANGE[0]:g} and {PITCH_RANGE[1]:g} "
            f"semitones, got {pitch!r}"
        )


def set_default_pitch(name: str, semitones: float) -> VoiceModel:
    _check_pitch(semitones)
    entry = get(name)
    path = entry.folder / SETTINGS_FILE
    data: dict = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        data = loaded if isinstance(loaded, dict) else {}
    data["pitch"] = float(semitones)
    _write_json(path, data)
    return _entry(entry.folder)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{INCOMING}{uuid.uuid4().hex}.json")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LibraryError(f"cannot save {path}: {exc.strerror or exc}") from exc


def remove(name: str) -> None:
    """Delete a voice and its files from the library."""
    entry = get(name)
    # rename first: a removal interrupted half way leaves a hidden leftover, not a broken voice
    trash = entry.folder.with_name(f"{INCOMING}{uuid.uuid4().hex}")
    try:
        os.rename(entry.folder, trash)
    except OSError as exc:
        raise LibraryError(f"cannot remove '{name}': {exc.strerror or exc}") from exc
    shutil.rmtree(trash, ignore_errors=True)


# ---- from a setting to files ------------------------------------------------------------------
@dataclass(frozen=True)
class Resolved:
    """The files a voice setting names."""

    model: Path
    index: Path | None
    info: ModelInfo
    name: str  # the library name, or the file name for a path


def resolve(model: str, index: str = "") -> Resolved:
    """``model``: a library name or a path to a .pth/.onnx; ``index``: a path, or '' for the
    library voice's own index (a model given by path has none unless ``index`` names one)."""
    if not model:
        raise LibraryError(
            "no RVC voice model chosen: pick one in the voice library, or give --model "
            "NAME_OR_PATH (library: " + (", ".join(names()) or "empty") + ")"
        )
    folder = _folder_of(model)
    if folder is not None:
        entry = _entry(folder)
        if entry.info is None or entry.model is None or entry.info.error:
            raise LibraryError(f"the RVC voice '{entry.name}' cannot be used: {entry.error}")
        own_index, name = entry.index, entry.name
        info = entry.info
        path = entry.model
    else:
        path = Path(model).expanduser()
        if not path.is_file():
            raise LibraryError(_unknown(model))
        info = read_model_info(path)
        if info.error:
            raise LibraryError(f"{path.name} cannot be used: {info.error}")
        own_index, name = None, path.name
    chosen = Path(index).expanduser() if index else own_index
    if chosen is not None:
        if not chosen.is_file():
            raise LibraryError(f"the index {chosen} does not exist")
        why = index_fits(info, read_index_info(chosen))
        if why:
            raise LibraryError(f"{chosen.name} cannot be used with {name}: {why}")
    return Resolved(path, chosen, info, name)


def split_dropped(files: Iterable[str | Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Dropped or chosen files sorted into (models, indexes, others)."""
    models, indexes, others = [], [], []
    for f in map(Path, files):
        suffix = f.suffix.lower()
        if suffix in MODEL_SUFFIXES:
            models.append(f)
        elif suffix == INDEX_SUFFIX:
            indexes.append(f)
        else:
            others.append(f)
    return models, indexes, others
