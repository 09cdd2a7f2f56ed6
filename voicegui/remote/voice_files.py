"""The RVC voice files a server can run, by content hash: the voices in its own library
(``voicegui rvc import`` on the server) and the files clients sent it.

Clients name a file by its sha256, so the same file under another name is found, and a file
is sent only once. A sent file arrives in chunks, in order, into ``<folder>/.incoming-*``; when
its last byte is in, its hash is checked and it is renamed into place, then read the safe way
(the restricted reader of ``model_info``) before anything loads it. The folder keeps the most
recently used files within a count and a byte budget.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from voicegui.remote import protocol as P
from voicegui.remote.protocol import ProtocolError

READ_CHUNK = 1 << 20
MAX_KEPT_FILES = 32
MAX_KEPT_BYTES = 8 << 30
INCOMING_STALE_SECONDS = 600.0  # a half-sent file nobody continued


@dataclass(frozen=True)
class VoiceFile:
    sha256: str
    path: Path
    kind: str  # 'model' or 'index'
    name: str  # the library's name, or the name the client gave


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Incoming:
    def __init__(self, path: Path, total: int, name: str) -> None:
        self.path, self.total, self.name = path, total, name
        self.received = 0
        self.hash = hashlib.sha256()
        self.touched = time.monotonic()


class VoiceFiles:
    """Files by hash; ``folder`` holds the files clients sent."""

    def __init__(self, folder: Path, max_files: int = MAX_KEPT_FILES) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self._files: dict[str, VoiceFile] = {}
        self._incoming: dict[str, _Incoming] = {}
        self._lock = threading.Lock()
        for stale in self.folder.glob(".incoming-*"):
            stale.unlink(missing_ok=True)
        for path in sorted(self.folder.iterdir()):
            kind = _kind_of(path.suffix.lower())
            if kind and path.is_file() and _is_hash(path.stem):
                self._files[path.stem] = VoiceFile(path.stem, path, kind, path.name)

    def add_library(self, models) -> None:
        """The server's own library (``library.list_models()``): usable entries by hash."""
        for m in models:
            if not m.ok or m.model is None:
                continue
            entry = VoiceFile(sha256_of(m.model), m.model, "model", m.name)
            self._files.setdefault(entry.sha256, entry)
            if m.index is not None:
                ix = VoiceFile(sha256_of(m.index), m.index, "index", f"{m.name} (index)")
                self._files.setdefault(ix.sha256, ix)

    def get(self, sha256: str, kind: str) -> VoiceFile | None:
        entry = self._files.get(sha256)
        if entry is None or entry.kind != kind or not entry.path.is_file():
            return None
        if entry.path.parent == self.folder:
            os.utime(entry.path)  # most recently used: the last to be dropped
        return entry

    def by_name(self, name: str) -> VoiceFile | None:
        key = name.casefold()
        for entry in self._files.values():
            if entry.kind == "model" and entry.name.casefold() == key:
                return entry
        return None

    def names(self) -> list[str]:
        """The server's own voices (not the files clients sent) by name."""
        return sorted(
            e.name
            for e in self._files.values()
            if e.kind == "model" and e.path.parent != self.folder
        )

    # ---- receiving ---------------------------------------------------------------------------
    def receive(self, params: dict, data: bytes) -> dict:
        """One chunk of a file a client sends; {'received': bytes so far, 'complete': bool}."""
        kind = P.param_str(params, "kind")
        if kind not in P.UPLOAD_SUFFIXES:
            raise ProtocolError(P.BAD_REQUEST, "kind must be 'model' or 'index'")
        sha = P.param_str(params, "sha256").lower()
        if not _is_hash(sha):
            raise ProtocolError(P.BAD_REQUEST, "sha256 must be 64 hex digits")
        suffix = P.param_str(params, "suffix").lower()
        if suffix not in P.UPLOAD_SUFFIXES[kind]:
            allowed = ", ".join(P.UPLOAD_SUFFIXES[kind])
            raise ProtocolError(P.BAD_REQUEST, f"a {kind} file must be one of {allowed}")
        total = P.param_int(params, "total", 1, P.MAX_UPLOAD_BYTES)
        offset = P.param_int(params, "offset", 0, P.MAX_UPLOAD_BYTES)
        length = P.param_int(params, "length", 1, P.UPLOAD_CHUNK_BYTES)
        name = P.param_str(params, "name", required=False)[:200]
        if length > len(data) or offset + length > total:
            raise ProtocolError(P.BAD_REQUEST, "the chunk does not fit the file's length")
        with self._lock:
            if sha in self._files and self._files[sha].path.is_file():
                return {"received": total, "complete": True}
            self._sweep()
            job = self._incoming.get(sha)
            if offset == 0:
                if job is not None:
                    job.path.unlink(missing_ok=True)
                self._make_room(total)
                path = self.folder / f".incoming-{sha}{suffix}"
                job = self._incoming[sha] = _Incoming(path, total, name)
                path.write_bytes(b"")
            elif job is None or job.received != offset or job.total != total:
                have = 0 if job is None else job.received
                raise ProtocolError(P.BAD_REQUEST, f"expected the chunk at offset {have}")
            chunk = data[:length]
            try:
                with job.path.open("ab") as f:
                    f.write(chunk)
            except OSError as exc:
                self._drop(sha)
                raise ProtocolError(
                    P.FAILED, f"the server cannot store the file: {exc.strerror or exc}"
                ) from None
            job.hash.update(chunk)
            job.received += length
            job.touched = time.monotonic()
            if job.received < job.total:
                return {"received": job.received, "complete": False}
            del self._incoming[sha]
            if job.hash.hexdigest() != sha:
                job.path.unlink(missing_ok=True)
                raise ProtocolError(P.BAD_REQUEST, "the file sent does not match its sha256")
            final = self.folder / f"{sha}{suffix}"
            os.replace(job.path, final)
            error = _check_file(final, kind)
            if error:
                final.unlink(missing_ok=True)
                raise ProtocolError(P.BAD_REQUEST, error)
            self._files[sha] = VoiceFile(sha, final, kind, job.name or final.name)
            return {"received": job.received, "complete": True}

    def _drop(self, sha: str) -> None:
        job = self._incoming.pop(sha, None)
        if job is not None:
            job.path.unlink(missing_ok=True)

    def _sweep(self) -> None:
        now = time.monotonic()
        for sha, job in list(self._incoming.items()):
            if now - job.touched > INCOMING_STALE_SECONDS:
                self._drop(sha)

    def _make_room(self, incoming: int) -> None:
        """Drop the least recently used sent files beyond the count and byte budgets."""
        sent = [e for e in self._files.values() if e.path.parent == self.folder and e.path.exists()]
        sent.sort(key=lambda e: e.path.stat().st_mtime)
        used = sum(e.path.stat().st_size for e in sent) + incoming
        while sent and (len(sent) >= self.max_files or used > MAX_KEPT_BYTES):
            old = sent.pop(0)
            used -= old.path.stat().st_size
            old.path.unlink(missing_ok=True)
            self._files.pop(old.sha256, None)


def _kind_of(suffix: str) -> str:
    for kind, suffixes in P.UPLOAD_SUFFIXES.items():
        if suffix in suffixes:
            return kind
    return ""


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _check_file(path: Path, kind: str) -> str:
    """Why a received file cannot be used ('' when it can), read without running it."""
    if kind == "model":
        from voicegui.voices.rvc.model_info import read_model_info

        info = read_model_info(path)
        return f"the voice file sent cannot be used: {info.error}" if info.error else ""
    from voicegui.voices.rvc.model_info import read_index_info

    index = read_index_info(path)
    return f"the index sent cannot be used: {index.error}" if index.error else ""
