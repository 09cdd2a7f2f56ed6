"""The server's Seed-VC: one loaded model shared by every stream, each stream's own state
(its prompt, settings and noise generators), reference clips kept by hash, and the blocks of
streams that arrive together run as batches.

A block computed alone is exactly the app's local Seed-VC block (``SeedVCVoice.convert``): same
plan, same model call, same seeded draws."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voicegui.remote import protocol as P
from voicegui.remote.batched import Row, StreamGenerators, batch_key, infer_rows
from voicegui.remote.protocol import ProtocolError, StreamSettings
from voicegui.remote.streams import StreamTable
from voicegui.threads import compute_threads, own_torch_threads
from voicegui.voices.seedvc.model import SAMPLE_RATE, Prompt, SeedVCModel, plan_block

log = logging.getLogger(__name__)

MIN_REFERENCE_SECONDS = 0.5


@dataclass
class StreamState:
    ref_hash: str
    settings: StreamSettings
    prompt: Prompt
    generators: StreamGenerators
    blocks: int = 0


@dataclass
class BlockJob:
    """One block request after validation: the stream, where the block sits, its window."""

    sid: str
    geometry: P.BlockGeometry
    window: np.ndarray
    settings: StreamSettings | None  # new settings sent with this block


class SeedVCService:
    name = "seedvc"
    rate = SAMPLE_RATE

    def __init__(
        self,
        model: SeedVCModel,
        *,
        threads: int | None = None,
        max_streams: int = P.MAX_STREAMS,
        idle_seconds: float = P.IDLE_SECONDS,
        max_references: int = P.MAX_REFERENCES,
        batching: bool = True,
    ) -> None:
        self.model = model
        self.threads = threads or compute_threads()
        self.streams = StreamTable(max_streams, idle_seconds)
        self.max_references = max_references
        self.batching = batching
        self._references: OrderedDict[str, np.ndarray] = OrderedDict()
        self._prompts: OrderedDict[tuple, Prompt] = OrderedDict()
        self._lock = threading.Lock()  # one block pass at a time: the model is shared
        self.batches: dict[int, int] = {}  # batch size -> how many passes had it

    @classmethod
    def load(cls, files: dict, device: str = "auto", precision: str = "auto", **kw):
        model = SeedVCModel.load(**files, device=device, precision=precision)
        return cls(model, **kw)

    def info(self) -> dict:
        device = self.model.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        return {
            "voice": self.name,
            "rate": self.rate,
            "provider": self.model.provider,
            "device": name,
            "precision": self.model.precision,
            "streams": len(self.streams),
            "idle_seconds": self.streams.idle_seconds,
        }

    # ---- stream start and end --------------------------------------------------------------
    def start(self, params: dict, audio: np.ndarray) -> dict:
        sr = P.param_int(params, "sr", 8000, P.MAX_REFERENCE_RATE)
        ref_hash = P.param_str(params, "ref_hash")
        settings = StreamSettings.from_json(P.param_str(params, "settings"))
        seed = P.param_int(params, "seed", 0, 2**63 - 1)
        if params.get("with_reference") is True:
            self._store_reference(ref_hash, audio, sr)
        elif ref_hash not in self._references:
            raise ProtocolError(P.NEED_REFERENCE, "the server does not hold this reference")
        with self._lock:
            own_torch_threads(self.threads)
            prompt = self._prompt(ref_hash, settings)
        state = StreamState(ref_hash, settings, prompt, StreamGenerators(seed, self.model.device))
        sid = self.streams.open(state)
        return {"stream": sid, "rate": self.rate}

    def keep(self, sid: str) -> dict:
        self.streams.get(sid)  # marks it active; refused when unknown or expired
        return {"kept": True}

    def end(self, sid: str) -> dict:
        return {"ended": self.streams.close(sid)}

    def _store_reference(self, ref_hash: str, audio: np.ndarray, sr: int) -> None:
        if audio.size > P.MAX_REFERENCE_SAMPLES:
            raise ProtocolError(P.TOO_LARGE, f"a reference over {P.MAX_REFERENCE_SECONDS} s")
        ref = np.ascontiguousarray(audio.reshape(-1), dtype=np.float32)
        if P.reference_hash(ref.tobytes(), sr) != ref_hash:
            raise ProtocolError(P.BAD_REQUEST, "the reference does not match its hash")
        if not np.all(np.isfinite(ref)):
            raise ProtocolError(P.BAD_REQUEST, "the reference has NaN or infinite samples")
        if len(ref) < MIN_REFERENCE_SECONDS * sr:
            raise ProtocolError(P.BAD_REQUEST, "the reference is shorter than 0.5 s")
        if sr != SAMPLE_RATE:
            import soxr

            ref = soxr.resample(ref, sr, SAMPLE_RATE).astype(np.float32)
        self._references[ref_hash] = ref
        self._references.move_to_end(ref_hash)
        while len(self._references) > self.max_references:
            self._references.popitem(last=False)

    def _prompt(self, ref_hash: str, s: StreamSettings) -> Prompt:
        key = (ref_hash, s.max_prompt_time, s.style_from_prompt)
        prompt = self._prompts.get(key)
        if prompt is None:
            ref = self._references.get(ref_hash)
            if ref is None:
                raise ProtocolError(P.NEED_REFERENCE, "the server no longer holds this reference")
            prompt = self.model.make_prompt(
                ref, s.max_prompt_time, style_from_prompt=s.style_from_prompt
            )
            self._prompts[key] = prompt
            while len(self._prompts) > 2 * self.max_references:
                self._prompts.popitem(last=False)
        self._prompts.move_to_end(key)
        return prompt

    # ---- blocks ----------------------------------------------------------------------------
    def job(self, params: dict, audio: np.ndarray) -> BlockJob:
        """Validate one block request (no compute)."""
        sid = P.param_str(params, "stream")
        g = P.block_geometry(params, self.rate)
        if audio.size != g.window:
            raise ProtocolError(P.BAD_REQUEST, f"window of {audio.size} samples, not {g.window}")
        text = P.param_str(params, "settings", required=False)
        settings = StreamSettings.from_json(text) if text else None
        self.streams.get(sid)  # refused now when unknown
        window = np.ascontiguousarray(audio.reshape(-1), dtype=np.float32)
        if not np.all(np.isfinite(window)):
            raise ProtocolError(P.BAD_REQUEST, "the window has NaN or infinite samples")
        return BlockJob(sid, g, window, settings)

    def run_blocks(
        self, jobs: list[BlockJob]
    ) -> list[tuple[np.ndarray, float, int] | ProtocolError]:
        """Each job's output, the time of the pass that computed it (ms) and how many blocks
        that pass computed together; or why it was refused."""
        out: list = [None] * len(jobs)
        rows: dict[tuple, list[tuple[int, Row]]] = {}
        with self._lock:
            own_torch_threads(self.threads)
            for i, job in enumerate(jobs):
                try:
                    row = self._row(job)
                except ProtocolError as exc:
                    out[i] = exc
                    continue
                key = batch_key(row) if self.batching else (i,)
                rows.setdefault(key, []).append((i, row))
            for group in rows.values():
                t0 = time.perf_counter()
                try:
                    waves = infer_rows(self.model, [r for _, r in group])
                except Exception as exc:  # a failing block refuses its requests, not the server
                    log.exception("block failed")
                    for i, _ in group:
                        out[i] = ProtocolError(P.FAILED, f"{type(exc).__name__}: {exc}")
                    continue
                ms = (time.perf_counter() - t0) * 1e3
                self.batches[len(group)] = self.batches.get(len(group), 0) + 1
                for (i, _), wave in zip(group, waves, strict=True):
                    out[i] = (wave.float().cpu().numpy(), ms, len(group))
        return out

    def _row(self, job: BlockJob) -> Row:
        state: StreamState = self.streams.get(job.sid)
        if job.settings is not None and job.settings != state.settings:
            old, state.settings = state.settings, job.settings
            if (old.max_prompt_time, old.style_from_prompt) != (
                job.settings.max_prompt_time,
                job.settings.style_from_prompt,
            ):
                state.prompt = self._prompt(state.ref_hash, job.settings)
        s, g = state.settings, job.geometry
        left_s = (g.left - g.sola_extra) / SAMPLE_RATE  # context before the SOLA margin
        plan = plan_block(left_s, s.extra_dit_left_time, g.out_samples, g.right)
        if plan.mel_frames <= 0 or plan.drop_frames < 0:
            raise ProtocolError(P.BAD_REQUEST, "the window is too short for its block")
        state.blocks += 1
        window = torch.from_numpy(job.window).to(self.model.device)
        return Row(
            window,
            state.prompt,
            plan,
            s.diffusion_steps,
            s.cfg_rate,
            self.model.vocoder_frames_for(plan),
            state.generators,
        )


def seedvc_files(folder: Path | None) -> dict:
    """The Seed-VC files in ``folder`` (the installed layout), or the installed model's."""
    if folder is None:
        from voicegui.voices.seedvc.voice import installed_files

        return installed_files()
    from voicegui import modelhub

    files = dict(
        dit=folder / modelhub.entry("seedvc").file("dit").local_name,
        hift=folder / "hift.pt",
        campplus=folder / "campplus_cn_common.bin",
        content_dir=folder,
    )
    missing = [p.name for k, p in files.items() if k != "content_dir" and not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}")
    return files
