"""What client and server say to each other: model and tensor names, request parameters,
limits, and the JSON status every reply carries.

Every request goes to one Triton model per voice (``voicegui_seedvc``, ``voicegui_rvc``) with one
float32 input
``AUDIO`` (batch dimension first, as Triton's dynamic batcher wants) and request parameters:

* ``token``: the server's access token, on every request.
* ``op``: ``start`` (AUDIO = the reference clip, or empty when the server already holds the
  clip whose hash is ``ref_hash``), ``block`` (AUDIO = one window), ``keep`` (the stream is
  alive while its user is silent: it is not dropped as idle), ``end``, or ``info`` (what the
  server runs on, and ``idle_seconds``: how long a stream may stay silent without a ``keep``).
* ``stream``: the stream id the server issued at ``start`` (a random 128-bit capability: a
  stream cannot name, read or reset another stream without knowing its id).
* Seed-VC's ``start`` also carries ``sr``, ``ref_hash``, ``seed``, ``settings`` (JSON) and
  ``with_reference`` (whether AUDIO is the clip). RVC's carries ``model`` (the voice file's
  sha256, or '' to name one of the server's own voices by ``model_name``), ``index`` (the
  index file's sha256 or ''), ``f0`` (the pitch estimator), ``seed`` and ``settings``; a file
  the server lacks is refused with ``need_model``/``need_index`` and the client sends it with
  ``upload`` (AUDIO = the file's bytes seen as float32, in chunks; ``kind``, ``sha256``,
  ``suffix``, ``offset``, ``length``, ``total``), then starts again.
* ``block`` carries ``index``, ``block``, ``left``, ``right``, ``sola_extra`` and, when they
  changed, ``settings``.

Triton's Python backend cannot carry a tensor with no elements, so a request or reply without
audio carries one zero sample (``NO_AUDIO``). Replies carry ``AUDIO`` (the block's output) and
``STATUS``: a JSON object
with ``ok``, and ``error``/``code`` when refused, or what the op returns (``stream``,
``compute_ms``, ...; a block's reply has ``compute_ms``, the time of the pass that computed it,
and ``batch``, how many blocks that pass computed together). A refused request gets a status,
never a crash of the server.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

MODEL_PREFIX = "voicegui_"
INFO_MODEL = "voicegui_info"
AUDIO = "AUDIO"
STATUS = "STATUS"
PROTOCOL_VERSION = 1
DEFAULT_PORT = 8765

OPS = ("start", "block", "keep", "end", "info", "upload")
NO_AUDIO_SHAPE = (1, 1)  # what stands for "no audio" (see above)
# Bounds of what one request may carry (a request over them is refused before any work).
MAX_WINDOW_SECONDS = 10.0  # context + block + lookahead at the voice's rate
MAX_REFERENCE_SECONDS = 60.0
MAX_REFERENCE_RATE = 192000
MAX_REFERENCE_SAMPLES = int(MAX_REFERENCE_SECONDS * 48000)
MAX_PARAM_CHARS = 2048  # any one string parameter (settings JSON included)
MAX_TOKEN_CHARS = 512
MAX_STREAMS = 32  # live streams per server
MAX_REFERENCES = 16  # reference clips kept by hash for streams that start again
IDLE_SECONDS = 30.0  # a stream that sends nothing for this long is dropped
# RVC voice files a client may send: a v2 48 kHz .pth is ~55 MB (fp16) to ~110 MB (fp32), an
# index a few hundred MB at most; sent in chunks well under gRPC's message limit.
MAX_UPLOAD_BYTES = 1 << 30
UPLOAD_CHUNK_BYTES = 4 << 20
UPLOAD_SUFFIXES = {"model": (".pth", ".onnx"), "index": (".index",)}

# Error codes in STATUS.
UNAUTHORIZED = "unauthorized"
BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
UNKNOWN_STREAM = "unknown_stream"
NEED_REFERENCE = "need_reference"
NEED_MODEL = "need_model"
NEED_INDEX = "need_index"
BUSY = "busy"
FAILED = "failed"


class ProtocolError(ValueError):
    """A request the server refuses; ``code`` is one of the error codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def model_name(voice: str) -> str:
    return MODEL_PREFIX + voice


def reference_hash(samples_bytes: bytes, sr: int) -> str:
    """The name a reference clip goes by (its float32 samples and rate)."""
    h = hashlib.blake2b(samples_bytes, digest_size=16)
    h.update(str(int(sr)).encode())
    return h.hexdigest()


# ---- voice settings sent at start and when they change --------------------------------------
@dataclass(frozen=True)
class StreamSettings:
    """The Seed-VC settings a stream runs with (what ``SeedVCVoice.update`` takes)."""

    diffusion_steps: int = 10
    cfg_rate: float = 0.7
    max_prompt_time: float = 3.0
    style_from_prompt: bool = False
    extra_dit_left_time: float = 0.5

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    def as_params(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> StreamSettings:
        raw = _settings_object(text)
        out = {}
        for name, kind, lo, hi in (
            ("diffusion_steps", int, 1, 50),
            ("cfg_rate", float, 0.0, 1.0),
            ("max_prompt_time", float, 0.5, 30.0),
            ("extra_dit_left_time", float, 0.0, 10.0),
        ):
            if name in raw:
                out[name] = kind(_number(raw, name, lo, hi))
        if "style_from_prompt" in raw:
            if not isinstance(raw["style_from_prompt"], bool):
                raise ProtocolError(BAD_REQUEST, "setting style_from_prompt must be true/false")
            out["style_from_prompt"] = raw["style_from_prompt"]
        return cls(**out)


@dataclass(frozen=True)
class RvcStreamSettings:
    """The RVC settings a stream runs with (what ``RvcVoice.update`` takes)."""

    pitch: float = 0.0
    formant: float = 0.0
    index_rate: float = 0.0
    protect: float = 0.5
    rms_mix_rate: float = 1.0
    speaker: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RvcStreamSettings:
        raw = _settings_object(text)
        out: dict = {}
        for name, lo, hi in (
            ("pitch", -48.0, 48.0),
            ("formant", -24.0, 24.0),
            ("index_rate", 0.0, 1.0),
            ("protect", 0.0, 1.0),
            ("rms_mix_rate", 0.0, 1.0),
            ("speaker", 0, 4096),
        ):
            if name in raw:
                out[name] = _number(raw, name, lo, hi)
        if "speaker" in out:
            if out["speaker"] != int(out["speaker"]):
                raise ProtocolError(BAD_REQUEST, "setting speaker must be an integer")
            out["speaker"] = int(out["speaker"])
        return cls(**out)


def _settings_object(text: str) -> dict:
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(BAD_REQUEST, f"settings are not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError(BAD_REQUEST, "settings must be a JSON object")
    return raw


def _number(raw: dict, name: str, lo: float, hi: float) -> float:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(BAD_REQUEST, f"setting {name} must be a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ProtocolError(BAD_REQUEST, f"setting {name}={value} is outside {lo}..{hi}")
    return value


# ---- request parameters ----------------------------------------------------------------------
def param_str(params: dict, name: str, required: bool = True, default: str = "") -> str:
    value = params.get(name)
    if value is None:
        if required:
            raise ProtocolError(BAD_REQUEST, f"missing parameter '{name}'")
        return default
    if not isinstance(value, str):
        raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be a string")
    if len(value) > MAX_PARAM_CHARS:
        raise ProtocolError(TOO_LARGE, f"parameter '{name}' is longer than {MAX_PARAM_CHARS}")
    return value


def param_int(params: dict, name: str, lo: int, hi: int, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise ProtocolError(BAD_REQUEST, f"missing parameter '{name}'")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be an integer")
    if not lo <= value <= hi:
        code = TOO_LARGE if value > hi else BAD_REQUEST
        raise ProtocolError(code, f"parameter '{name}'={value} is outside {lo}..{hi}")
    return value


@dataclass(frozen=True)
class BlockGeometry:
    """Where the block sits in the window (voice samples), as ``BlockInfo`` says."""

    index: int
    block: int
    left: int
    right: int
    sola_extra: int

    @property
    def window(self) -> int:
        return self.left + self.block + self.right

    @property
    def out_samples(self) -> int:
        return self.block + self.sola_extra


def block_geometry(params: dict, rate: int) -> BlockGeometry:
    most = int(MAX_WINDOW_SECONDS * rate)
    g = BlockGeometry(
        index=param_int(params, "index", 0, 2**62),
        block=param_int(params, "block", 1, most),
        left=param_int(params, "left", 0, most),
        right=param_int(params, "right", 0, most),
        sola_extra=param_int(params, "sola_extra", 0, most),
    )
    if g.window > most:
        raise ProtocolError(TOO_LARGE, f"a window of {g.window} samples is over {most}")
    if g.sola_extra > g.left:
        raise ProtocolError(BAD_REQUEST, "sola_extra must lie inside the left context")
    return g


# ---- the status every reply carries ------------------------------------------------------------
def ok_status(**fields) -> str:
    return json.dumps({"ok": True, **fields}, separators=(",", ":"))


def error_status(code: str, message: str) -> str:
    return json.dumps({"ok": False, "code": code, "error": message}, separators=(",", ":"))


def read_status(raw) -> dict:
    """STATUS as the client receives it (bytes or a 1-element array of bytes) -> dict."""
    while not isinstance(raw, bytes | str):
        raw = raw[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        status = json.loads(text)
    except ValueError:
        return {"ok": False, "code": FAILED, "error": f"unreadable status: {text[:200]}"}
    return status if isinstance(status, dict) else {"ok": False, "code": FAILED, "error": text}


def parse_address(address: str) -> tuple[str, int]:
    """'host:port', 'host' (the default port) or '[v6]:port' -> (host, port)."""
    text = address.strip()
    for prefix in ("grpc://", "grpcs://"):
        text = text.removeprefix(prefix)
    if not text:
        raise ValueError("no server address given (host:port)")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{address}' is not a server address (host:port)")
    return host, int(port)
