"""The server's RVC: the shared weights (HuBERT/ContentVec, the pitch estimators) loaded once,
voice models loaded when a stream first asks for them and shared by the streams that use them,
and each stream's own state: its 16 kHz window, pitch cache, settings and noise generator.

A stream's block is exactly the app's local RVC block (``RvcVoice.convert``): the same stream
code, the same plan, and the same seeded draws, because each stream draws its noise from its
own generators (``RvcStream.reset_noise``). RVC blocks are computed one at
a time: streams rarely share a model, and a model's synthesizer is a small part of a GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegui.remote import protocol as P
from voicegui.remote.protocol import ProtocolError, RvcStreamSettings
from voicegui.remote.streams import StreamTable
from voicegui.remote.voice_files import VoiceFiles
from voicegui.settings import F0_METHODS
from voicegui.threads import compute_threads, own_torch_threads
from voicegui.voices.base import BlockInfo, VoiceError

log = logging.getLogger(__name__)

MAX_LOADED_MODELS = 8  # voice models kept loaded (a v2 48 kHz model: ~110 MB in float32)
MAX_RATE = 48000


@dataclass
class RvcStreamState:
    voice: object  # RvcVoice over this stream's RvcStream
    settings: RvcStreamSettings
    rate: int
    blocks: int = 0


@dataclass
class RvcBlockJob:
    sid: str
    geometry: P.BlockGeometry
    window: np.ndarray
    settings: RvcStreamSettings | None


class RvcService:
    name = "rvc"
    rate = None  # per voice model: a stream's start reply says it

    def __init__(
        self,
        shared,
        files: VoiceFiles,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        max_streams: int = P.MAX_STREAMS,
        idle_seconds: float = P.IDLE_SECONDS,
        f0_methods: tuple[str, ...] = ("rmvpe",),
    ) -> None:
        from voicegui.voices.rvc.components import (
            load_estimator,
            load_torch_content,
            resolve_precision,
            torch_device_for,
        )

        self.shared, self.files = shared, files
        self.threads = threads or compute_threads()
        own_torch_threads(self.threads)
        self.device = torch_device_for(device)
        self.precision, self.notes = resolve_precision("torch", precision, self.device.type)
        self.content = load_torch_content(shared, self.device, self.precision)
        self._estimators = {m: load_estimator(m, shared, self.device) for m in f0_methods}
        self._models: OrderedDict[str, object] = OrderedDict()
        self._indexes: OrderedDict[str, object] = OrderedDict()
        self.streams = StreamTable(max_streams, idle_seconds)
        self._lock = threading.Lock()  # one block at a time: models are shared
        self.batches: dict[int, int] = {}

    @classmethod
    def load(cls, upload_dir: Path, **kw) -> RvcService:
        """The installed shared weights and the server's voice library."""
        from voicegui.modelhub import ModelError
        from voicegui.voices.rvc import library, shared_weights

        try:
            shared = shared_weights.installed_files()
        except ModelError as exc:
            raise VoiceError(str(exc)) from exc
        files = VoiceFiles(upload_dir)
        files.add_library(library.list_models())
        return cls(shared, files, **kw)

    @property
    def provider(self) -> str:
        from voicegui.voices.rvc.components import torch_provider

        return torch_provider(self.device, self.precision)

    def info(self) -> dict:
        import torch

        dev = self.device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        return {
            "voice": self.name,
            "provider": self.provider,
            "device": name,
            "precision": self.precision,
            "streams": len(self.streams),
            "idle_seconds": self.streams.idle_seconds,
            "models": self.files.names(),
            "f0_methods": list(F0_METHODS),
        }

    # ---- files, stream start and end ---------------------------------------------------------
    def upload(self, params: dict, audio: np.ndarray) -> dict:
        data = np.ascontiguousarray(audio.reshape(-1), dtype=np.float32).tobytes()
        return self.files.receive(params, data)

    def start(self, params: dict, audio: np.ndarray) -> dict:
        from voicegui.voices.rvc.frontends import build_stream
        from voicegui.voices.rvc.voice import RvcVoice

        sha = P.param_str(params, "model", required=False).lower()
        name = P.param_str(params, "model_name", required=False)
        index_sha = P.param_str(params, "index", required=False).lower()
        f0 = P.param_str(params, "f0", required=False, default="rmvpe")
        if f0 not in F0_METHODS:
            raise ProtocolError(P.BAD_REQUEST, f"pitch estimator must be one of {F0_METHODS}")
        settings = RvcStreamSettings.from_json(P.param_str(params, "settings"))
        seed = P.param_int(params, "seed", 0, 2**63 - 1)
        entry = self.files.get(sha, "model") if sha else self.files.by_name(name)
        if entry is None:
            if sha:
                raise ProtocolError(P.NEED_MODEL, f"the server does not hold the voice {name}")
            held = ", ".join(self.files.names()) or "none"
            raise ProtocolError(
                P.BAD_REQUEST, f"the server has no RVC voice named '{name}' (it has: {held})"
            )
        index_entry = None
        if index_sha:
            index_entry = self.files.get(index_sha, "index")
            if index_entry is None:
                raise ProtocolError(P.NEED_INDEX, "the server does not hold this voice's index")
        with self._lock:
            own_torch_threads(self.threads)
            synth = self._model(entry)
            index = self._index(index_entry) if index_entry is not None else None
            estimator = self._estimator(f0) if synth.f0 else None
            try:
                stream = build_stream(synth, self.content, estimator, index, f0)
            except ValueError as exc:
                raise ProtocolError(P.BAD_REQUEST, str(exc)) from None
            voice = RvcVoice(stream, threads=self.threads, label=entry.name)
            stream.reset_noise(seed)
        self._apply(voice, settings)
        rate = int(synth.sample_rate)
        state = RvcStreamState(voice, settings, rate)
        sid = self.streams.open(state)
        return {"stream": sid, "rate": rate, "voice": entry.name, "f0": bool(synth.f0)}

    def keep(self, sid: str) -> dict:
        self.streams.get(sid)
        return {"kept": True}

    def end(self, sid: str) -> dict:
        return {"ended": self.streams.close(sid)}

    def _model(self, entry):
        synth = self._models.get(entry.sha256)
        if synth is None:
            synth = self._load_model(entry.path)
            self._models[entry.sha256] = synth
            while len(self._models) > MAX_LOADED_MODELS:
                self._models.popitem(last=False)
        self._models.move_to_end(entry.sha256)
        return synth

    def _load_model(self, path: Path):
        from voicegui.voices.rvc.components import PartsError, load_synth

        try:
            synth = load_synth(path, self.device, self.precision, self.threads)
        except (PartsError, ImportError) as exc:
            raise ProtocolError(P.FAILED, f"the voice cannot be loaded: {exc}") from None
        if synth.sample_rate > MAX_RATE:
            raise ProtocolError(P.BAD_REQUEST, f"a voice at {synth.sample_rate} Hz (48 kHz most)")
        return synth

    def _index(self, entry):
        from voicegui.voices.rvc.index import FeatureIndex, FeatureIndexError

        index = self._indexes.get(entry.sha256)
        if index is None:
            try:
                index = FeatureIndex.load(entry.path)
            except FeatureIndexError as exc:
                raise ProtocolError(P.BAD_REQUEST, str(exc)) from None
            self._indexes[entry.sha256] = index
            while len(self._indexes) > MAX_LOADED_MODELS:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(entry.sha256)
        return index

    def _estimator(self, method: str):
        if method not in self._estimators:
            try:
                from voicegui.voices.rvc.components import load_estimator

                self._estimators[method] = load_estimator(method, self.shared, self.device)
            except Exception as exc:  # a missing weights file, an unknown method
                raise ProtocolError(P.FAILED, f"pitch estimator {method}: {exc}") from None
        return self._estimators[method]

    @staticmethod
    def _apply(voice, s: RvcStreamSettings) -> None:
        try:
            voice.update(s.__dict__)
        except VoiceError as exc:
            raise ProtocolError(P.BAD_REQUEST, str(exc)) from None

    # ---- blocks ------------------------------------------------------------------------------
    def job(self, params: dict, audio: np.ndarray) -> RvcBlockJob:
        sid = P.param_str(params, "stream")
        state: RvcStreamState = self.streams.get(sid)
        g = P.block_geometry(params, state.rate)
        if audio.size != g.window:
            raise ProtocolError(P.BAD_REQUEST, f"window of {audio.size} samples, not {g.window}")
        text = P.param_str(params, "settings", required=False)
        settings = RvcStreamSettings.from_json(text) if text else None
        window = np.ascontiguousarray(audio.reshape(-1), dtype=np.float32)
        if not np.all(np.isfinite(window)):
            raise ProtocolError(P.BAD_REQUEST, "the window has NaN or infinite samples")
        return RvcBlockJob(sid, g, window, settings)

    def run_blocks(self, jobs: list) -> list:
        out: list = []
        with self._lock:
            own_torch_threads(self.threads)
            for job in jobs:
                t0 = time.perf_counter()
                try:
                    wave = self._run(job)
                except ProtocolError as exc:
                    out.append(exc)
                    continue
                except Exception as exc:  # a failing block refuses its request, not the server
                    log.exception("block failed")
                    out.append(ProtocolError(P.FAILED, f"{type(exc).__name__}: {exc}"))
                    continue
                ms = (time.perf_counter() - t0) * 1e3
                self.batches[1] = self.batches.get(1, 0) + 1
                out.append((wave, ms, 1))
        return out

    def _run(self, job: RvcBlockJob) -> np.ndarray:
        state: RvcStreamState = self.streams.get(job.sid)
        if job.settings is not None and job.settings != state.settings:
            self._apply(state.voice, job.settings)
            state.settings = job.settings
        g = job.geometry
        info = BlockInfo(g.index, g.block, g.left, g.right, g.sola_extra)
        try:
            out = state.voice.convert(job.window, info)
        except (ValueError, VoiceError) as exc:
            raise ProtocolError(P.BAD_REQUEST, str(exc)) from None
        state.blocks += 1
        return out
