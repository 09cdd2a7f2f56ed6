"""``voicegui serve``: the voices behind NVIDIA Triton Inference Server, through PyTriton.

Triton owns the network side (gRPC, TLS, the dynamic batcher that gathers the blocks of streams
arriving together); the bound Python callable checks each request's token, validates it, and
hands it to the voice service. Every request gets its own reply: a refused one an error status,
never an exception that would fail the other requests of its batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voicegui import __version__
from voicegui.remote import protocol as P
from voicegui.remote.auth import token_matches

log = logging.getLogger(__name__)

DEFAULT_BATCH_DELAY_US = 2000  # how long Triton holds a block for others to join its batch
MAX_BATCH = 8
MIN_IDLE_SECONDS = 3.0  # the app keeps a silent stream alive every third of it


class VoiceServer:
    """The request handling, apart from Triton (tested directly too)."""

    def __init__(self, services: dict, token: str) -> None:
        self.services = services
        self._token = token
        self.refused = 0

    def handler(self, service) -> Callable[[list], list[dict]]:
        def infer(requests: list) -> list[dict]:
            return self.handle(service, requests)

        return infer

    def handle(self, service, requests: list) -> list[dict]:
        replies: list[dict | None] = [None] * len(requests)
        blocks: list[tuple[int, object]] = []
        for i, request in enumerate(requests):
            try:
                params = dict(request.parameters or {})
                if not token_matches(params.get("token"), self._token):
                    raise P.ProtocolError(P.UNAUTHORIZED, "missing or wrong access token")
                op = P.param_str(params, "op")
                audio = self._audio(request)
                if op == "block":
                    blocks.append((i, service.job(params, audio)))
                elif op == "start":
                    replies[i] = _reply(P.ok_status(**service.start(params, audio)))
                elif op == "keep":
                    replies[i] = _reply(P.ok_status(**service.keep(P.param_str(params, "stream"))))
                elif op == "end":
                    replies[i] = _reply(P.ok_status(**service.end(P.param_str(params, "stream"))))
                elif op == "info":
                    replies[i] = _reply(P.ok_status(**self.info(service)))
                elif op == "upload" and hasattr(service, "upload"):
                    replies[i] = _reply(P.ok_status(**service.upload(params, audio)))
                else:
                    raise P.ProtocolError(P.BAD_REQUEST, f"unknown op; one of {', '.join(P.OPS)}")
            except P.ProtocolError as exc:
                replies[i] = self._refuse(exc)
            except Exception as exc:  # whatever a request holds, the server goes on
                log.exception("request failed")
                replies[i] = self._refuse(P.ProtocolError(P.FAILED, f"{type(exc).__name__}"))
        if blocks:
            results = service.run_blocks([job for _, job in blocks])
            for (i, job), result in zip(blocks, results, strict=True):
                if isinstance(result, P.ProtocolError):
                    replies[i] = self._refuse(result)
                else:
                    wave, ms, rows = result
                    status = P.ok_status(index=job.geometry.index, compute_ms=ms, batch=rows)
                    replies[i] = _reply(status, wave)
        service.streams.expire()
        return replies  # type: ignore[return-value]

    def info(self, service) -> dict:
        return {
            "server": f"voicegui {__version__}",
            "protocol": P.PROTOCOL_VERSION,
            "voices": sorted(self.services),
            **service.info(),
        }

    def _refuse(self, exc: P.ProtocolError) -> dict:
        self.refused += 1
        if exc.code != P.UNKNOWN_STREAM:
            log.info("refused: %s (%s)", exc, exc.code)
        return _reply(P.error_status(exc.code, str(exc)))

    @staticmethod
    def _audio(request) -> np.ndarray:
        data = request.data.get(P.AUDIO) if hasattr(request, "data") else None
        if data is None:
            raise P.ProtocolError(P.BAD_REQUEST, f"missing input {P.AUDIO}")
        if data.dtype != np.float32 or data.ndim != 2 or data.shape[0] != 1:
            raise P.ProtocolError(P.BAD_REQUEST, f"{P.AUDIO} must be float32 of shape (1, n)")
        return data[0]


def _reply(status: str, audio: np.ndarray | None = None) -> dict:
    wave = np.zeros(P.NO_AUDIO_SHAPE, np.float32) if audio is None else audio.reshape(1, -1)
    return {P.AUDIO: wave.astype(np.float32, copy=False), P.STATUS: _status_array(status)}


def _status_array(status: str) -> np.ndarray:
    return np.array([[status.encode("utf-8")]], dtype=object)


# ---- starting Triton ------------------------------------------------------------------------
def python_library_path() -> None:
    """Triton's Python backend stub links libpython; with a Python not built by the
    distribution (pyenv, conda, uv) it would load the system's unless the running interpreter's
    library folder comes first on LD_LIBRARY_PATH."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir or not sys.platform.startswith("linux"):
        return
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    if not (Path(libdir) / name).exists():
        return
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Refuse a TLS setup that could not work before anything loads: both files, readable,
    PEM, and the key belonging to the certificate (what Triton would otherwise fail on later,
    with its own words)."""
    import ssl

    if cert is None and key is None:
        return
    if cert is None or key is None:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    for path, marker, what in (
        (cert, b"-----BEGIN CERTIFICATE-----", "a PEM certificate"),
        (key, b"PRIVATE KEY-----", "a PEM private key"),
    ):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        if marker not in Path(path).read_bytes():
            raise ValueError(f"{path} is not {what}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        why = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            why = "the key does not belong to the certificate"
        raise ValueError(f"cannot serve TLS with {cert} and {key}: {why}") from None


def _free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    services: dict,
    token: str,
    host: str = "127.0.0.1",
    port: int = P.DEFAULT_PORT,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    batch_delay_us: int = DEFAULT_BATCH_DELAY_US,
    max_batch: int = MAX_BATCH,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run Triton with one model per voice until interrupted (SIGINT/SIGTERM)."""
    python_library_path()
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    check_tls_files(tls_cert, tls_key)
    tls = {}
    if tls_cert is not None:
        tls = dict(grpc_use_ssl=True, grpc_server_cert=tls_cert, grpc_server_key=tls_key)
    config = TritonConfig(
        grpc_address=host,
        grpc_port=port,
        # PyTriton drives its own server over HTTP: keep that on this machine only
        http_address="127.0.0.1",
        http_port=_free_local_port(),
        allow_metrics=False,
        exit_on_error=True,
        **tls,
    )
    server = VoiceServer(services, token)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with Triton(config=config) as triton:
        for name, service in services.items():
            triton.bind(
                model_name=P.model_name(name),
                infer_func=server.handler(service),
                inputs=[Tensor(name=P.AUDIO, dtype=np.float32, shape=(-1,))],
                outputs=[
                    Tensor(name=P.AUDIO, dtype=np.float32, shape=(-1,)),
                    Tensor(name=P.STATUS, dtype=bytes, shape=(1,)),
                ],
                config=ModelConfig(
                    max_batch_size=max_batch,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=batch_delay_us),
                ),
            )
        if on_ready is not None:
            on_ready()
        with contextlib.suppress(KeyboardInterrupt):
            triton.serve()
