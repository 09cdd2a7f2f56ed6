"""An RVC voice model computed by a ``voicegui serve`` server.

The voice goes by the sha256 of its file: the server runs it when it holds the same file (in
its own library or sent before), and otherwise the app sends the file (and its index), once,
in chunks, with progress. A voice the app does not hold can be named: the server's library
voice of that name runs. Everything else is the remote voice's (client.py): the pipelined
blocks, the fallback, reconnection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegui.remote import protocol as P
from voicegui.remote.client import Connection, RemoteError, RemoteVoice
from voicegui.remote.protocol import RvcStreamSettings
from voicegui.remote.voice_files import sha256_of
from voicegui.voices.base import VoiceError

UPLOAD_TIMEOUT = 60.0  # seconds per chunk (a slow link, a busy server)
_hashes: dict[tuple, str] = {}  # (path, size, mtime) -> sha256: a voice is hashed once


@dataclass(frozen=True)
class LocalFile:
    path: Path
    sha256: str


@dataclass(frozen=True)
class VoiceChoice:
    """What the settings name: files the app holds, or a name for the server's library."""

    name: str
    model: LocalFile | None
    index: LocalFile | None


def _local(path: Path) -> LocalFile:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = sha256_of(path)
    return LocalFile(path, _hashes[key])


def choose_voice(model: str, index: str = "") -> VoiceChoice:
    """The voice files ``model`` (a library name or a path) and ``index`` name here; a name
    the app's library does not know is left for the server's library."""
    from voicegui.voices.rvc.library import LibraryError, resolve

    if not model:
        raise VoiceError("no RVC voice model chosen: pick one in the voice library")
    try:
        found = resolve(model, index)
    except LibraryError as exc:
        looks_like_path = any(sep in model for sep in ("/", "\\")) or Path(model).suffix
        if looks_like_path or index:
            raise VoiceError(str(exc)) from exc
        return VoiceChoice(model, None, None)
    idx = _local(found.index) if found.index is not None else None
    return VoiceChoice(found.name, _local(found.model), idx)


class RemoteRvc(RemoteVoice):
    name = "rvc"

    def __init__(
        self,
        address: str,
        token: str,
        ca_file: str | Path | None = None,
        *,
        model: str,
        index: str = "",
        f0: str = "rmvpe",
        progress=None,
        **kw,
    ) -> None:
        self.choice = choose_voice(model, index)
        self.f0 = f0
        self.progress = progress  # (stage, i, n): a voice file on its way to the server
        self.uploaded = 0  # files sent
        super().__init__(address, token, ca_file, **kw)
        self._ready = True
        try:
            self._open_stream()
        except BaseException:
            self.close()
            raise
        finally:
            # progress is for the build; a file sent again on reconnection goes quietly
            self.progress = None

    def default_settings(self) -> RvcStreamSettings:
        return RvcStreamSettings()

    @property
    def label(self) -> str:
        return self.choice.name

    def update(self, params: dict) -> None:
        s = self.settings.__dict__
        values = {k: params[k] if params.get(k) is not None else s[k] for k in s}
        if not 0 <= float(values["index_rate"]) <= 1:
            raise VoiceError(f"index rate must be between 0 and 1, got {values['index_rate']}")
        self.settings = RvcStreamSettings(
            pitch=float(values["pitch"]),
            formant=float(values["formant"]),
            index_rate=float(values["index_rate"]),
            protect=float(values["protect"]),
            rms_mix_rate=float(values["rms_mix_rate"]),
            speaker=int(values["speaker"]),
        )

    def _start(self, conn: Connection) -> dict:
        c = self.choice
        params = {
            "model": c.model.sha256 if c.model else "",
            "model_name": c.name,
            "index": c.index.sha256 if c.index else "",
            "f0": self.f0,
            "seed": self.seed,
            "settings": self.settings.to_json(),
        }
        for _ in range(3):  # the model, then its index, may be missing
            try:
                return conn.call(self.voice, "start", params)
            except RemoteError as exc:
                if exc.code == P.NEED_MODEL and c.model is not None:
                    self._send(conn, "model", c.model)
                elif exc.code == P.NEED_INDEX and c.index is not None:
                    self._send(conn, "index", c.index)
                else:
                    raise
        raise RemoteError(f"{self.address} keeps asking for the voice's files")

    def _send(self, conn: Connection, kind: str, f: LocalFile) -> None:
        """The file in chunks, in order; the server checks its sha256 at the end (a file that
        changed since it was hashed is refused there)."""
        total = f.path.stat().st_size
        if total > P.MAX_UPLOAD_BYTES:
            raise VoiceError(f"{f.path.name} is over {P.MAX_UPLOAD_BYTES >> 20} MB")
        what = f"sending {f.path.name} to {self.address}"
        mb = max(1, -(-total // (1 << 20)))
        with f.path.open("rb") as src:
            offset = 0
            while offset < total:
                chunk = src.read(P.UPLOAD_CHUNK_BYTES)
                if not chunk:
                    raise VoiceError(f"{f.path.name} changed while it was being sent")
                padded = chunk + b"\0" * (-len(chunk) % 4)  # the tensor carries float32
                params = {
                    "kind": kind,
                    "sha256": f.sha256,
                    "suffix": f.path.suffix.lower(),
                    "name": f.path.name,
                    "offset": offset,
                    "length": len(chunk),
                    "total": total,
                }
                data = np.frombuffer(padded, dtype=np.float32)
                conn.call(self.voice, "upload", params, data, timeout=UPLOAD_TIMEOUT)
                offset += len(chunk)
                if self.progress is not None:
                    self.progress(what, min(mb, -(-offset >> 20)), mb)
        self.uploaded += 1
