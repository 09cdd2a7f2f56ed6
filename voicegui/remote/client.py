"""The app's side: a connection to ``voicegui serve`` over one long-lived gRPC stream, and the
remote voice the audio host runs like any windowed voice.

Pipelining: ``convert`` sends block k, then returns the reply to block k-1, waiting for it at
most ``patience`` of a block. The network round trip and the server's compute so get a whole
block plus that patience, and the voice's output is one block later than a local voice's: the
engine counts that block as the *network* part of the latency (``pipeline_blocks``), and the
dry fallback is delayed the same. A reply that is late or lost raises ``RemoteLate``: the engine
plays the user's fallback (the dry voice, crossfaded) for that block and counts it; the voice
counts it too. A broken connection is re-established in the background, and the engine hears of
the loss and the return as ``remote`` events (a banner in the window).

While the user is silent no blocks go out; a watcher keeps the stream alive on the server
(``keep``, every third of the server's idle time) and notices a lost server then too, so the
voice is there again when the user speaks. A stream the server forgot anyway (a pause longer
than its idle time, the server's stream table restarted) starts again in the background,
without a banner: the server is there.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voicegui.remote import protocol as P
from voicegui.remote.failures import CertificateError, describe, read_certificate
from voicegui.remote.protocol import StreamSettings
from voicegui.voices.base import BlockInfo, VoiceError
from voicegui.voices.reference import mono_reference, reference_at

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0  # seconds for a start/info/end call (a start may compute the prompt)
RECONNECT_EVERY = 1.0
MAX_UNANSWERED = 2  # blocks in flight per stream before the next is skipped (server behind)
END_WAIT = 1.0  # seconds closing waits for the server to end the stream (then it expires)
WATCH_EVERY = 1.0  # seconds between the watcher's looks at the link
SILENT_SECONDS = 3.0  # no reply at all for this long while blocks go out: the link is dead
STREAM_SEED = 1234  # the local Seed-VC voice's per-stream seed (seedvc/voice.py)
EVENT = "remote"  # engine event kind: the window shows it as a banner
P_RATE = 22050  # Seed-VC's rate (the server's info says the same)


class RemoteError(VoiceError):
    """The server refused a request or cannot be reached."""

    def __init__(self, message: str, code: str = P.FAILED) -> None:
        super().__init__(message)
        self.code = code


class RemoteLate(RemoteError):
    """A block's reply did not come in time (or the link is down): the fallback plays."""


class Reply:
    """One request's reply, filled in by the stream's thread."""

    __slots__ = ("op", "sent", "event", "status", "audio", "received")

    def __init__(self, op: str) -> None:
        self.op = op
        self.sent = time.perf_counter()
        self.event = threading.Event()
        self.status: dict | None = None
        self.audio: np.ndarray | None = None
        self.received = 0.0

    def set(self, status: dict, audio: np.ndarray | None) -> None:
        self.status, self.audio, self.received = status, audio, time.perf_counter()
        self.event.set()

    def wait(self, timeout: float) -> dict | None:
        return self.status if self.event.wait(max(0.0, timeout)) else None


class Connection:
    """A gRPC client with one bidirectional stream; replies are matched to requests by id."""

    def __init__(self, address: str, token: str, ca_file: str | Path | None = None) -> None:
        import tritonclient.grpc as grpcclient

        host, port = P.parse_address(address)
        self.address, self._token = address, token
        url = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.tls = bool(ca_file)
        if ca_file:
            try:
                read_certificate(ca_file)  # a clear message now, not a failed handshake later
            except CertificateError as exc:
                raise RemoteError(str(exc)) from None
        self._grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(
            url, ssl=self.tls, root_certificates=str(ca_file) if ca_file else None
        )
        self._pending: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.broken: str | None = None
        self.replied = False  # a reply came: a failure later is the link breaking
        self.last_reply = time.perf_counter()
        self.observer: Callable[[Reply], None] | None = None  # hears every reply (timings)
        self.client.start_stream(callback=self._on_reply)

    def send(self, voice: str, op: str, params: dict, audio: np.ndarray | None = None) -> Reply:
        if self.broken:
            raise RemoteError(self.broken, P.FAILED)
        data = np.zeros(P.NO_AUDIO_SHAPE, np.float32) if audio is None else audio.reshape(1, -1)
        inp = self._grpc.InferInput(P.AUDIO, list(data.shape), "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        rid = str(next(self._ids))
        reply = Reply(op)
        with self._lock:
            if len(self._pending) > 256:  # replies never coming (a server dropping requests)
                oldest = sorted(self._pending, key=lambda k: self._pending[k].sent)[:128]
                for key in oldest:
                    del self._pending[key]
            self._pending[rid] = reply
        try:
            self.client.async_stream_infer(
                P.model_name(voice),
                [inp],
                request_id=rid,
                parameters={"token": self._token, "op": op, **params},
            )
        except Exception as exc:
            self.fail(describe(exc, self.address, self.tls, self.replied))
            raise RemoteError(self.broken or str(exc)) from exc
        return reply

    def call(self, voice: str, op: str, params: dict, audio=None, timeout=CALL_TIMEOUT) -> dict:
        """Send and wait; the status when it is ok, else RemoteError."""
        reply = self.send(voice, op, params, audio)
        status = reply.wait(timeout)
        if status is None:
            raise RemoteError(self.broken or f"no answer from {self.address} in {timeout:g} s")
        if not status.get("ok"):
            raise RemoteError(status.get("error", "refused"), status.get("code", P.FAILED))
        return status

    def _on_reply(self, result=None, error=None) -> None:
        self.last_reply = time.perf_counter()
        if result is None:
            # our requests are well formed: an error without a result is the stream failing
            self.fail(describe(error, self.address, self.tls, self.replied))
            return
        self.replied = True
        rid = result.get_response().id
        with self._lock:
            reply = self._pending.pop(rid, None)
        if reply is None:
            return
        status = P.read_status(result.as_numpy(P.STATUS))
        audio = result.as_numpy(P.AUDIO)
        reply.set(status, None if audio is None else audio.reshape(-1))
        if self.observer is not None:
            self.observer(reply)

    def fail(self, why: str) -> None:
        with self._lock:
            if self.broken is None:
                self.broken = why
            pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply.set({"ok": False, "code": P.FAILED, "error": why}, None)

    def close(self) -> None:
        self.fail("closed")
        with contextlib.suppress(Exception):
            self.client.stop_stream(cancel_requests=True)
        with contextlib.suppress(Exception):
            self.client.close()


class RemoteVoice:
    """A voice computed by a ``voicegui serve`` server: a windowed voice (see module doc).
    What a stream starts with is the voice's own (``RemoteSeedVC``, ``RemoteRvc``)."""

    name = ""
    stateful = False
    needs_reference = False
    pipeline_blocks = 1  # replies come one block later: the network part of the latency

    def __init__(
        self,
        address: str,
        token: str,
        ca_file: str | Path | None = None,
        *,
        voice: str = "",
        patience: float = 0.5,
        speech_detector=None,
        seed: int = STREAM_SEED,
    ) -> None:
        self.address, self.voice, self.ca_file = address, voice or self.name, ca_file
        self._token = token
        self.patience = patience  # of a block: how long convert waits for the reply it needs
        self.seed = seed
        self.settings = self.default_settings()
        self._settings_sent = None
        self._ready = False  # a stream can start (Seed-VC: once it has its reference)
        self.rate = P_RATE
        self._conn: Connection | None = None
        self._stream: str | None = None
        self._inflight: tuple[int, Reply] | None = None  # the last block sent
        self._unanswered: deque[Reply] = deque()  # blocks sent, no reply yet
        self._last_index = -2
        self._lock = threading.Lock()
        self._reconnecting = threading.Event()
        self._reopening = threading.Event()
        self._loss_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._announced_loss = False
        self._last_sent = time.perf_counter()  # a block or a keep, for the watcher
        self.emit: Callable[[str, str], None] = lambda kind, message: None
        # counters (read by the bench and the window)
        self.sent = self.received = self.late = self.lost = self.reconnects = self.skipped = 0
        self.round_trips_ms: deque[float] = deque(maxlen=4096)
        self.server_ms: deque[float] = deque(maxlen=4096)
        self.batch_sizes: deque[int] = deque(maxlen=4096)
        self.server_block_ms: deque[float] = deque(maxlen=4096)  # a pass's time per block in it
        self.info = self._connect()
        # the engine's gate asks it whether a block is speech (built by the caller: a VAD
        # loads torch, which the window, testing servers with this module, never imports)
        self.speech_detector = speech_detector
        threading.Thread(target=self._watch, daemon=True, name="remote-watch").start()

    # ---- connection -------------------------------------------------------------------------
    def _connect(self) -> dict:
        try:
            conn = Connection(self.address, self._token, self.ca_file)
        except RemoteError:
            raise
        except Exception as exc:  # a bad address, an unreadable certificate, ...
            raise RemoteError(f"cannot connect to {self.address}: {exc}") from exc
        try:
            info = conn.call(self.voice, "info", {})
        except RemoteError as exc:
            broken = conn.broken
            conn.close()
            if exc.code == P.UNAUTHORIZED:
                raise RemoteError(f"{self.address} refused the access token", exc.code) from None
            if broken:  # the connection's own words name the address
                raise RemoteError(broken, exc.code) from None
            raise RemoteError(f"{self.address}: {exc}", exc.code) from None
        conn.observer = self._observe
        old, self._conn = self._conn, conn
        if old is not None:
            old.close()
        return info

    def _observe(self, reply: Reply) -> None:
        """Timings of every block reply, late ones included (the stream's thread)."""
        status = reply.status or {}
        if reply.op == "block" and status.get("ok"):
            self.round_trips_ms.append((reply.received - reply.sent) * 1e3)
            ms, batch = float(status.get("compute_ms", 0.0)), max(1, int(status.get("batch", 1)))
            self.server_ms.append(ms)
            self.batch_sizes.append(batch)
            self.server_block_ms.append(ms / batch)

    def set_event_sink(self, emit: Callable[[str, str], None]) -> None:
        """The engine's event callback: loss and return of the server are announced there."""
        self.emit = emit

    @property
    def provider(self) -> str:
        return f"remote: {self.info.get('provider', '?')} on {self.info.get('device', '?')}"

    @property
    def warnings(self) -> list[str]:
        return []

    # ---- what a voice defines -------------------------------------------------------------
    def default_settings(self):
        raise NotImplementedError

    def _start(self, conn: Connection) -> dict:
        """Start a stream on the server; its status (``stream``, ``rate``)."""
        raise NotImplementedError

    def _open_stream(self) -> None:
        """Start a stream on the server, ending the one before."""
        conn = self._conn
        if conn is None or conn.broken:
            raise RemoteError(f"not connected to {self.address}")
        if self._stream is not None:
            self._end_stream(conn)
        status = self._start(conn)
        self.rate = int(status.get("rate") or self.rate)
        with self._lock:
            self._stream = status["stream"]
            self._settings_sent = self.settings
            self._inflight = None
            self._unanswered.clear()

    def _end_stream(self, conn: Connection, wait: float = 0.0) -> None:
        """Tell the server the stream ended (its slot is free at once, not after the idle
        expiry); ``wait``: how long to wait for the reply (the connection closes next)."""
        sid, self._stream = self._stream, None
        if sid is not None and not conn.broken:
            with contextlib.suppress(RemoteError):
                reply = conn.send(self.voice, "end", {"stream": sid})
                reply.wait(wait)

    def _lost(self, why: str) -> None:
        """The link failed: announce it once and reconnect in the background (called from the
        engine's thread and the watcher's)."""
        with self._loss_lock:
            announce, self._announced_loss = not self._announced_loss, True
            start = not self._reconnecting.is_set() and not self._closed
            if start:
                self._reconnecting.set()
        if announce:
            self.emit(
                EVENT,
                f"Remote GPU server {self.address} lost ({why}); playing the "
                "fallback while reconnecting",
            )
        if start:
            threading.Thread(
                target=self._reconnect_loop, daemon=True, name="remote-reconnect"
            ).start()

    def _reopen_stream(self) -> None:
        """The server forgot the stream (it is there, the stream expired): start a new one in
        the background, quietly; blocks meanwhile play the fallback."""
        with self._loss_lock:
            if self._closed or self._reconnecting.is_set() or self._reopening.is_set():
                return
            self._reopening.set()

        def run() -> None:
            try:
                self._open_stream()
            except (RemoteError, VoiceError) as exc:
                self._lost(str(exc))
            finally:
                self._reopening.clear()

        threading.Thread(target=run, daemon=True, name="remote-stream").start()

    def _watch(self) -> None:
        """Keep the stream alive through the user's silences and notice a lost server then."""
        keep: tuple[str, Reply] | None = None  # the keep in flight and its stream
        while not self._stop.wait(WATCH_EVERY):
            conn = self._conn
            if conn is None or not self._ready:
                continue  # not prepared: no stream to keep
            if conn.broken:
                self._lost(conn.broken)  # once; the reconnection is under way
                keep = None
                continue
            if keep is not None:
                sid, reply = keep
                if reply.event.is_set():
                    keep = None
                    status = reply.status or {}
                    if status.get("code") == P.UNKNOWN_STREAM and self._stream == sid:
                        self._stream = None
                        self._reopen_stream()
                elif time.perf_counter() - reply.sent > CALL_TIMEOUT:
                    conn.fail(f"no reply from {self.address} for {CALL_TIMEOUT:g} s")
                continue
            sid = self._stream
            idle = float(self.info.get("idle_seconds", P.IDLE_SECONDS))
            if sid is not None and time.perf_counter() - self._last_sent > idle / 3:
                self._last_sent = time.perf_counter()
                with contextlib.suppress(RemoteError):  # a failed send fails the connection
                    keep = (sid, conn.send(self.voice, "keep", {"stream": sid}))

    def _reconnect_loop(self) -> None:
        try:
            while not self._closed:
                try:
                    self.info = self._connect()
                    self._open_stream()
                except (RemoteError, VoiceError) as exc:
                    log.info("reconnecting to %s: %s", self.address, exc)
                    time.sleep(RECONNECT_EVERY)
                    continue
                self.reconnects += 1
                self._announced_loss = False
                self.emit(EVENT, f"Remote GPU server {self.address} reconnected")
                return
        finally:
            self._reconnecting.clear()

    # ---- the Voice protocol ---------------------------------------------------------------
    def configure(self, device_rate: int) -> int:
        return self.rate

    def update(self, params: dict) -> None:
        raise NotImplementedError

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        """A voice without a reference clip needs nothing more."""

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        out_n = info.block + info.sola_extra
        follows = self._last_index == info.index - 1  # no gap (closed gate) since the last call
        self._last_index = info.index
        conn, sid = self._conn, self._stream
        if conn is None or conn.broken:
            self.lost += 1
            self._lost(conn.broken if conn is not None and conn.broken else "not connected")
            raise RemoteLate(f"no connection to {self.address}")
        if sid is None:  # connected, the stream starting (again)
            self.lost += 1
            if not self._reconnecting.is_set():
                self._reopen_stream()
            raise RemoteLate(f"the stream on {self.address} is starting")
        now = time.perf_counter()
        while self._unanswered and self._unanswered[0].event.is_set():
            self._unanswered.popleft()
        # nothing came back since a request that has waited this long: the link is dead
        if self._unanswered and conn.last_reply < self._unanswered[0].sent < now - SILENT_SECONDS:
            conn.fail(f"no reply from {self.address} for {SILENT_SECONDS:g} s")
        previous = (
            self._inflight if self._inflight and self._inflight[0] == info.index - 1 else None
        )
        self._inflight = None
        if len(self._unanswered) < MAX_UNANSWERED:
            self._send_block(conn, sid, window, info)
        else:  # the server is behind: queueing more would only make every reply later
            self.skipped += 1
        if previous is None:
            if follows and self.sent > 1:  # block k-1 was never sent (server behind or lost)
                self.late += 1
                raise RemoteLate(f"block {info.index - 1} was not computed in time")
            # the first block of a stream (or after a gap): the block before it was silence
            return np.zeros(out_n, np.float32)
        reply = previous[1]
        block_s = info.block / self.rate
        status = reply.wait(reply.sent + (1 + self.patience) * block_s - time.perf_counter())
        if status is None:
            self.late += 1
            raise RemoteLate(f"block {info.index - 1} came back too late")
        if not status.get("ok"):
            self.lost += 1
            if conn.broken:
                self._lost(conn.broken)
                raise RemoteLate(conn.broken)
            if status.get("code") == P.UNKNOWN_STREAM and self._stream == sid:
                self._stream = None  # expired on the server: a new one, quietly
                self._reopen_stream()
            raise RemoteError(status.get("error", "refused"), status.get("code", P.FAILED))
        self.received += 1
        audio = reply.audio
        if audio is None or len(audio) != out_n:
            raise RemoteError(f"the server returned {0 if audio is None else len(audio)} samples")
        return audio

    def _send_block(self, conn: Connection, sid: str, window: np.ndarray, info: BlockInfo) -> None:
        params = {
            "stream": sid,
            "index": info.index,
            "block": info.block,
            "left": info.left,
            "right": info.right,
            "sola_extra": info.sola_extra,
        }
        if self.settings != self._settings_sent:
            params["settings"] = self.settings.to_json()
            self._settings_sent = self.settings
        try:
            reply = conn.send(self.voice, "block", params, np.asarray(window, np.float32))
        except RemoteError as exc:
            self._lost(str(exc))
            return
        self.sent += 1
        self._last_sent = time.perf_counter()
        self._inflight = (info.index, reply)
        self._unanswered.append(reply)

    def lookahead(self) -> float:
        return 0.0  # the pipeline's block is counted by the engine (pipeline_blocks)

    def reset(self) -> None:
        """A new stream (fresh seeded noise, as the local voice's reset gives)."""
        if self.speech_detector is not None:
            self.speech_detector.reset()
        if self._ready and self._conn is not None and not self._conn.broken:
            try:
                self._open_stream()
            except (RemoteError, VoiceError) as exc:
                self._lost(str(exc))

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._end_stream(conn, wait=END_WAIT)
            conn.close()

    def stats(self) -> dict:
        """Counters and timings of the link, for the bench and the window."""

        def pct(values) -> dict:
            v = np.asarray(values, dtype=np.float64)
            if not len(v):
                return {}
            return {
                "p50_ms": float(np.percentile(v, 50)),
                "p99_ms": float(np.percentile(v, 99)),
                "max_ms": float(v.max()),
            }

        return {
            "sent": self.sent,
            "received": self.received,
            "late": self.late,
            "lost": self.lost,
            "skipped": self.skipped,
            "reconnects": self.reconnects,
            "round_trip": pct(self.round_trips_ms),
            "server_compute": pct(self.server_ms),
            "batch_sizes": sorted(set(self.batch_sizes)),
        }


class RemoteSeedVC(RemoteVoice):
    """Seed-VC on the server: the reference clip goes by hash, sent once when the server lacks
    it."""

    name = "seedvc"
    needs_reference = True

    def __init__(self, *args, **kw) -> None:
        self._reference: tuple[np.ndarray, str] | None = None
        super().__init__(*args, **kw)
        self.rate = int(self.info.get("rate", P_RATE))

    def default_settings(self) -> StreamSettings:
        return StreamSettings()

    def update(self, params: dict) -> None:
        s = self.settings
        self.settings = StreamSettings(
            diffusion_steps=int(params.get("diffusion_steps", s.diffusion_steps)),
            cfg_rate=float(params.get("cfg_rate", s.cfg_rate)),
            max_prompt_time=float(params.get("max_prompt_time", s.max_prompt_time)),
            style_from_prompt=bool(params.get("style_from_prompt", s.style_from_prompt)),
            extra_dit_left_time=float(params.get("extra_dit_left_time", s.extra_dit_left_time)),
        )

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        """The same checks and resampling as the local voice; then a stream on the server."""
        ref = reference_at(mono_reference(reference), sr, P_RATE)
        if len(ref) > P.MAX_REFERENCE_SECONDS * P_RATE:
            ref = ref[: int(P.MAX_REFERENCE_SECONDS * P_RATE)]  # more adds nothing to the style
        ref = np.ascontiguousarray(ref)
        self._reference = (ref, P.reference_hash(ref.tobytes(), P_RATE))
        self._ready = True
        self._open_stream()

    def _start(self, conn: Connection) -> dict:
        """The reference by hash first, the clip itself when the server lacks it."""
        if self._reference is None:
            raise VoiceError("Seed-VC needs a reference clip of the target voice")
        ref, ref_hash = self._reference
        params = {
            "sr": P_RATE,
            "ref_hash": ref_hash,
            "seed": self.seed,
            "settings": self.settings.to_json(),
        }
        try:
            return conn.call(self.voice, "start", params)
        except RemoteError as exc:
            if exc.code != P.NEED_REFERENCE:
                raise
            return conn.call(self.voice, "start", {**params, "with_reference": True}, ref)
