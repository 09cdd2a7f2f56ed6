"""Known models (models/catalog.toml), downloads with progress and verification, local import.

Nothing here runs unless the user asks: `voicegui models download NAME` (or the GUI's download
button) is the only path that reaches the network. Every file lands in
``paths.models_dir()/NAME/``; a manifest there records each file's size and sha256 so a later
start can tell an intact install from a damaged one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voicegui import paths

Progress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total or 0)
MANIFEST = "manifest.json"


class ModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelFile:
    role: str
    repo: str
    filename: str
    revision: str = "main"
    size: int = 0
    sha256: str = ""

    @property
    def local_name(self) -> str:
        return Path(self.filename).name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    label: str
    description: str
    licence: str
    files: tuple[ModelFile, ...]

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise ModelError(f"model '{self.name}' has no file with role '{role}'")


def load_catalog(path: Path | None = None) -> dict[str, ModelEntry]:
    path = path or paths.catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read the model catalog {path}: {exc}") from exc
    out = {}
    for name, entry in data.items():
        try:
            files = tuple(ModelFile(**f) for f in entry.get("files", []))
            out[name] = ModelEntry(
                name,
                entry.get("label", name),
                entry.get("description", ""),
                entry.get("licence", ""),
                files,
            )
        except TypeError as exc:
            raise ModelError(f"catalog entry '{name}' is malformed: {exc}") from exc
    return out


def entry(name: str, catalog: dict[str, ModelEntry] | None = None) -> ModelEntry:
    catalog = catalog if catalog is not None else load_catalog()
    if name not in catalog:
        raise ModelError(f"unknown model '{name}'; known: {', '.join(catalog) or 'none'}")
    return catalog[name]


def model_dir(name: str) -> Path:
    return paths.models_dir() / name


def file_path(name: str, role: str) -> Path:
    return model_dir(name) / entry(name).file(role).local_name


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(f"verifying {path.name}", done, total)
    return h.hexdigest()


def _manifest(name: str) -> dict:
    try:
        return json.loads((model_dir(name) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def manifest(name: str) -> dict:
    """What was recorded about each installed file of ``name`` (size, sha256, origin)."""
    return _manifest(name)


def record(name: str, key: str, path: Path, digest: str, **origin: str) -> None:
    """Note an installed file (``key``: its path inside the model's folder) in the manifest."""
    m = _manifest(name)
    m[key] = {"size": path.stat().st_size, "sha256": digest, **origin}
    (model_dir(name) / MANIFEST).write_text(json.dumps(m, indent=2), encoding="utf-8")


def _record(name: str, f: ModelFile, path: Path, digest: str) -> None:
    record(name, f.local_name, path, digest, repo=f.repo, revision=f.revision)


def _verify(f: ModelFile, path: Path, progress: Progress | None) -> str:
    if f.size and path.stat().st_size != f.size:
        raise ModelError(f"{path.name}: size {path.stat().st_size} bytes, expected {f.size}")
    digest = sha256_of(path, progress)
    if f.sha256 and digest != f.sha256:
        raise ModelError(f"{path.name}: sha256 {digest} does not match the catalog ({f.sha256})")
    return digest


# models whose files come in more than one layout check and import them themselves
_LAYOUTS = {"rvc": "voicegui.voices.rvc.shared_weights"}


def _layout(name: str):
    if name not in _LAYOUTS:
        return None
    import importlib

    return importlib.import_module(_LAYOUTS[name])


def status(name: str) -> dict[str, str]:
    """Per file: 'ok', 'missing' or 'changed' (size differs from what was recorded)."""
    layout = _layout(name)
    if layout is not None:
        return layout.status()
    e, m, out = entry(name), _manifest(name), {}
    for f in e.files:
        p = model_dir(name) / f.local_name
        if not p.is_file():
            out[f.local_name] = "missing"
        elif f.local_name in m and m[f.local_name]["size"] != p.stat().st_size:
            out[f.local_name] = "changed"
        else:
            out[f.local_name] = "ok"
    return out


def installed(name: str) -> bool:
    try:
        return all(v == "ok" for v in status(name).values())
    except ModelError:
        return False


def seedvc_installed() -> bool:
    return installed("seedvc")


def _tqdm_forwarding(progress: Progress, label: str):
    from tqdm.auto import tqdm

    class Forward(tqdm):  # huggingface_hub drives a tqdm; forward its counts to our callback
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            super().update(n)
            progress(label, int(self.n), int(self.total or 0))

    return Forward


def download(name: str, progress: Progress | None = None) -> Path:
    """Fetch every file of ``name`` (resuming partial downloads) and verify it."""
    from huggingface_hub import hf_hub_download

    e = entry(name)
    folder = model_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for f in e.files:
        target = folder / f.local_name
        if (
            target.is_file()
            and status(name).get(f.local_name) == "ok"
            and f.local_name in _manifest(name)
        ):
            continue
        kwargs = {}
        if progress is not None:
            kwargs["tqdm_class"] = _tqdm_forwarding(progress, f.local_name)
        try:
            got = Path(
                hf_hub_download(
                    f.repo,
                    f.filename,
                    revision=f.revision,
                    local_dir=folder / ".download",
                    **kwargs,
                )
            )
        except Exception as exc:
            raise ModelError(f"download of {f.repo}/{f.filename} failed: {exc}") from exc
        digest = _verify(f, got, progress)
        shutil.move(str(got), target)
        _record(name, f, target, digest)
    shutil.rmtree(folder / ".download", ignore_errors=True)
    return folder


def import_dir(name: str, source: Path, progress: Progress | None = None) -> Path:
    """Copy already-downloaded files (found by file name anywhere under ``source``)."""
    layout = _layout(name)
    if layout is not None:
        return layout.import_dir(Path(source), progress)
    e = entry(name)
    source = Path(source)
    if not source.is_dir():
        raise ModelError(f"{source} is not a folder")
    found: dict[str, Path] = {}
    for f in e.files:
        matches = sorted(source.rglob(f.local_name))
        if not matches:
            continue
        found[f.local_name] = matches[0]
    missing = [f.local_name for f in e.files if f.local_name not in found]
    if missing:
        raise ModelError(f"{source} lacks: {', '.join(missing)}")
    folder = model_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for f in e.files:
        src = found[f.local_name]
        digest = _verify(f, src, progress)
        dst = folder / f.local_name
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        _record(name, f, dst, digest)
    return folder


def remove(name: str) -> None:
    entry(name)
    shutil.rmtree(model_dir(name), ignore_errors=True)


# ---- CLI ---------------------------------------------------------------------------------
_last_shown: dict[str, int] = {}


def _bar(label: str, done: int, total: int) -> None:
    """A text progress bar on stderr, redrawn only when the percentage changes."""
    import sys

    percent = int(100 * done / total) if total else done >> 24  # unknown size: every 16 MB
    if _last_shown.get(label) == percent:
        return
    _last_shown[label] = percent
    end = "\n" if (total and done >= total) or not sys.stderr.isatty() else ""
    if total:
        width = 30
        filled = width * done // total
        line = (
            f"{label[:40]:40s} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done / 1e6:8.1f}/{total / 1e6:.1f} MB"
        )
    else:
        line = f"{label[:40]:40s} {done / 1e6:8.1f} MB"
    if not sys.stderr.isatty() and total and percent % 10 and done < total:
        return  # in a log, every 10 % is enough
    sys.stderr.write(("\r" if sys.stderr.isatty() else "") + line + end)
    sys.stderr.flush()


def _cmd(args) -> int:
    if args.models_command == "list":
        for e in load_catalog().values():
            st = status(e.name)
            state = (
                "installed"
                if all(v == "ok" for v in st.values())
                else f"not installed ({sum(v == 'missing' for v in st.values())} files missing)"
            )
            print(f"{e.name}: {e.label} [{state}]\n  {e.description}\n  licence: {e.licence}")
            for f in e.files:
                size = f"{f.size / 1e6:.1f} MB" if f.size else "size unknown"
                print(f"    {f.role:15s} {f.repo}/{f.filename} ({size}) {st[f.local_name]}")
        return 0
    if args.models_command == "download":
        print(download(args.name, progress=_bar))
        return 0
    if args.models_command == "import":
        print(import_dir(args.name, Path(args.folder), progress=_bar))
        return 0
    if args.models_command == "remove":
        remove(args.name)
        print(f"removed {args.name}")
        return 0
    raise ModelError("choose one of: list, download, import, remove")


def add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="list, download, import or remove model weights")
    msub = p.add_subparsers(dest="models_command")
    msub.add_parser("list", help="known models and whether they are installed")
    d = msub.add_parser("download", help="download a model's files (with progress)")
    d.add_argument("name")
    i = msub.add_parser("import", help="copy a model's files from a folder (offline machines)")
    i.add_argument("name")
    i.add_argument("folder")
    r = msub.add_parser("remove", help="delete a model's files")
    r.add_argument("name")
    p.set_defaults(func=_cmd)
