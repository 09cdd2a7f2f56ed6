"""What a PyTorch file holds, read without PyTorch and without running anything in it.

``torch.save`` writes a zip archive whose ``data.pkl`` is a pickle of the saved object; each
tensor appears in it as a call to ``torch._utils._rebuild_tensor_v2`` on a storage the pickle
names by key (the storage bytes are separate zip entries). PyTorch before 1.6 wrote one stream
instead: a few small pickles, the object's pickle, then the raw storages.

Either way the pickle is read here by an unpickler whose ``find_class`` knows a short list of
names and hands back inert stand-ins: a tensor becomes a ``TensorStub`` (shape and dtype only),
a storage type its dtype name. Any other name is refused (``strict``), or, to recognise files
that also carry training bookkeeping (fairseq checkpoints), becomes an inert ``Opaque`` record.
Nothing a file names is ever imported or called, so the window's process can list models
without torch and without trusting them.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Progress = Callable[[str, int, int], None]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a pre-1.6 torch.save stream
MAX_PICKLE = 64 << 20  # a state dict's pickle is well under 1 MB; refuse absurd ones

STORAGE_DTYPES = {
    "HalfStorage": "float16",
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
DTYPE_SIZES = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
}
# torch.<name> dtype objects, as _rebuild_tensor_v3 receives them
DTYPE_ALIASES = {
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    **{name: name for name in DTYPE_SIZES},
}


class TorchFileError(ValueError):
    """The file is not a readable PyTorch file, or names something a weights file never needs."""


@dataclass(frozen=True)
class TensorStub:
    """A tensor as the file describes it; its values are never read."""

    shape: tuple[int, ...]
    dtype: str
    storage: str  # key of the storage holding it

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


class Opaque:
    """Stand-in for an object of a class the file names but that is not on the list (lenient
    reading only): it records what the pickle hands it and never runs any code of that class."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Opaque:
        return type(self)(*args)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


def _rebuild_tensor(storage: Any, offset: Any, size: Any, *_rest: Any) -> TensorStub:
    if not isinstance(storage, _Storage):
        raise TorchFileError("a tensor refers to something that is not a storage")
    shape = tuple(int(n) for n in size)
    if any(n < 0 for n in shape) or int(offset) < 0:
        raise TorchFileError("a tensor has a negative size or offset")
    return TensorStub(shape, storage.dtype, storage.key)


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, grad: Any, hooks: Any, dtype: Any, *_: Any
) -> TensorStub:
    stub = _rebuild_tensor(storage, offset, size)
    return TensorStub(stub.shape, dtype if isinstance(dtype, str) else stub.dtype, stub.storage)


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data  # a Parameter is its tensor here


def _encode(text: Any, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles write bytes as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise TorchFileError("unexpected use of _codecs.encode")
    return text.encode(encoding)


_REBUILDERS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("_codecs", "encode"): _encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, strict: bool, storage_key: Callable[[tuple], _Storage]) -> None:
        super().__init__(file)
        self.strict = strict
        self.storage_key = storage_key
        self.opaque: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        found = _REBUILDERS.get((module, name))
        if found is not None:
            return found
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in DTYPE_ALIASES:
            return DTYPE_ALIASES[name]
        qualname = f"{module}.{name}"
        if self.strict:
            raise TorchFileError(
                f"it refers to {qualname}, which a weights file does not need; it was not loaded "
                "(a file that runs code when opened may be unsafe)"
            )
        self.opaque.add(qualname)
        return type(name, (Opaque,), {"qualname": qualname})

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchFileError(f"unexpected persistent reference {str(pid)[:60]!r}")
        return self.storage_key(pid)


def _storage_from(pid: tuple) -> _Storage:
    # zip: ('storage', type, key, location, numel); legacy: (..., numel, view_metadata)
    if len(pid) < 5 or not isinstance(pid[1], _StorageType):
        raise TorchFileError(f"unexpected storage reference {str(pid)[:60]!r}")
    return _Storage(pid[1].dtype, str(pid[2]), int(pid[4]))


@dataclass
class TorchFile:
    """What ``read`` found: the saved object (with stand-ins) and how it was stored."""

    obj: Any
    format: str  # 'zip' or 'legacy'
    storages: dict[str, _Storage]
    entries: dict[str, int]  # zip: storage key -> bytes stored (legacy: empty)
    opaque: frozenset[str]  # classes replaced by Opaque (lenient reading)

    def tensors(self) -> dict[str, TensorStub]:
        """The top-level tensors of a state dict (or of ``obj[key]`` via ``state_dict``)."""
        return state_dict(self.obj)


def state_dict(obj: Any) -> dict[str, TensorStub]:
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, TensorStub)}


def _pickle_entry(archive: zipfile.ZipFile) -> str:
    names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if not names:
        raise TorchFileError("it is a zip archive but not a PyTorch file (no data.pkl)")
    return min(names, key=lambda n: n.count("/"))


def read(path: str | Path, strict: bool = True) -> TorchFile:
    """Read the object a torch file holds (tensors as ``TensorStub``); ``TorchFileError`` says
    what is wrong with a damaged, foreign or unsafe file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(6)
            f.seek(0)
            if head.startswith(b"PK"):
                return _read_zip(f, strict)
            if head[:1] == b"\x80":
                return _read_legacy(f, strict)
            if len(head) == 0:
                raise TorchFileError("the file is empty")
            if b"ustar" in _peek(f, 262):
                raise TorchFileError("saved by a PyTorch older than 0.4, which is not supported")
            raise TorchFileError("it is not a PyTorch file")
    except TorchFileError:
        raise
    except zipfile.BadZipFile as exc:
        raise TorchFileError(f"the archive is damaged or truncated ({exc})") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        why = str(exc) or type(exc).__name__
        raise TorchFileError(f"the data is damaged or truncated ({why})") from exc
    except (AttributeError, KeyError, RecursionError, MemoryError) as exc:
        raise TorchFileError(f"the data is damaged ({type(exc).__name__})") from exc


def _peek(f: Any, n: int) -> bytes:
    data = f.read(n)
    f.seek(0)
    return data


def _read_zip(f: Any, strict: bool) -> TorchFile:
    with zipfile.ZipFile(f) as archive:
        entry = _pickle_entry(archive)
        info = archive.getinfo(entry)
        if info.file_size > MAX_PICKLE:
            raise TorchFileError(f"its object table is implausibly large ({info.file_size} bytes)")
        data = archive.read(entry)
        prefix = entry[: -len("data.pkl")]
        sizes = {
            n[len(prefix) + len("data/") :]: archive.getinfo(n).file_size
            for n in archive.namelist()
            if n.startswith(prefix + "data/")
        }
    storages: dict[str, _Storage] = {}

    def load(pid: tuple) -> _Storage:
        s = _storage_from(pid)
        storages[s.key] = s
        return s

    u = _Unpickler(io.BytesIO(data), strict, load)
    obj = u.load()
    for s in storages.values():
        if s.key not in sizes:
            raise TorchFileError(f"the archive lacks the data of storage {s.key} (damaged)")
        if sizes[s.key] < s.numel * DTYPE_SIZES.get(s.dtype, 1):
            raise TorchFileError(f"the data of storage {s.key} is shorter than it says (damaged)")
    return TorchFile(obj, "zip", storages, sizes, frozenset(u.opaque))


def _read_legacy(f: Any, strict: bool) -> TorchFile:
    storages: dict[str, _Storage] = {}

    def load(pid: tuple) -> _Storage:
        s = _storage_from(pid)
        storages[s.key] = s
        return s

    def none(pid: tuple) -> _Storage:
        raise TorchFileError("unexpected storage reference in the file header")

    if _Unpickler(f, True, none).load() != LEGACY_MAGIC:
        raise TorchFileError("it is not a PyTorch file (bad magic number)")
    _Unpickler(f, True, none).load()  # protocol version
    _Unpickler(f, True, none).load()  # sys info
    u = _Unpickler(f, strict, load)
    obj = u.load()
    return TorchFile(obj, "legacy", storages, {}, frozenset(u.opaque))


def verify_archive(path: str | Path, progress: Progress | None = None, label: str = "") -> None:
    """Read every byte of a zip-format torch file and check each entry's CRC (a file damaged
    after it was written); legacy files have no checksums and pass. ``label``: the name shown
    in progress reports (default: the file's)."""
    path = Path(path)
    label = f"checking {label or path.name}"
    with path.open("rb") as f:
        if f.read(2) != b"PK":
            return
    total, done = path.stat().st_size, 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    while chunk := member.read(1 << 20):
                        done += len(chunk)
                        if progress is not None:
                            progress(label, min(done, total), total)
    except zipfile.BadZipFile as exc:
        raise TorchFileError(f"the data is damaged ({exc})") from exc
    except (OSError, EOFError, ValueError) as exc:  # zlib errors and short reads
        raise TorchFileError(f"the data is damaged ({exc})") from exc
