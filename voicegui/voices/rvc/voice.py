"""An RVC voice model behind the Voice protocol: a windowed voice at the model's rate.

The engine hands a window (context + block + right context) and splices the outputs with SOLA;
each block runs RvcStream (stream.py): the 16 kHz window updated with the new block only, the
pitch estimator on the newest part only (cached frames for the rest), the synthesizer decoding
only the block. Pitch, formant, index rate, protect, loudness mix and speaker change between
blocks (``update``); ``reset`` starts a stream from silence with repeatable noise.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voicegui.threads import compute_threads, own_torch_threads
from voicegui.voices.base import BlockInfo, VoiceError

from . import live_values
from .stream import RvcStream, StreamParams, plan_block

if TYPE_CHECKING:
    from voicegui.settings import VoiceSettings

STREAM_SEED = 1234
_PARAMS = {
    "pitch": ("pitch", float),
    "formant": ("formant", float),
    "index_rate": ("index_rate", float),
    "protect": ("protect", float),
    "rms_mix_rate": ("rms_mix_rate", float),
    "speaker": ("speaker", int),
}


class RvcVoice:
    name = "rvc"
    stateful = False
    needs_reference = False

    def __init__(self, stream: RvcStream, threads: int | None = None, label: str = "") -> None:
        self.stream = stream
        self.label = label
        self.threads = threads or compute_threads()
        self._pending: StreamParams | None = None
        self._lock = threading.Lock()  # update() may come from another thread than convert()
        self._plan_key: tuple | None = None
        self._plan = None
        self.provider = "CPU"  # where and how it runs, e.g. 'CPU (torch, bf16)'
        self.warnings: list[str] = []  # what the user should know (a GPU that failed to load)
        self.stream.reset_noise(STREAM_SEED)

    @property
    def sample_rate(self) -> int:
        return self.stream.rate

    @property
    def params(self) -> StreamParams:
        return self.stream.params

    # ---- protocol ---------------------------------------------------------------------------
    def configure(self, device_rate: int) -> int:
        return self.stream.rate

    def update(self, params: dict) -> None:
        with self._lock:
            current = self._pending or self.stream.params
            values = {k: getattr(current, k) for k in StreamParams.__dataclass_fields__}
            for key, (attr, kind) in _PARAMS.items():
                if key in params and params[key] is not None:
                    values[attr] = kind(params[key])
            if not 0 <= values["index_rate"] <= 1:
                raise VoiceError(f"index rate must be between 0 and 1, got {values['index_rate']}")
            n = getattr(self.stream.synth, "emb_g", None)
            n = n.num_embeddings if n is not None else None
            if n is not None and not 0 <= values["speaker"] < n:
                raise VoiceError(f"speaker {values['speaker']} out of range: the model has {n}")
            self._pending = StreamParams(**values)

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        """RVC voices are trained on their speaker: no reference clip is needed."""

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        with self._lock:
            if self._pending is not None:
                self.stream.params, self._pending = self._pending, None
        own_torch_threads(self.threads)
        key = (len(window), info.block, info.left, info.right, info.sola_extra)
        if key != self._plan_key:
            self._plan = plan_block(self.stream.rate, len(window), *key[1:])
            self._plan_key = key
        out = self.stream.infer(np.asarray(window, dtype=np.float32).reshape(-1), self._plan)
        if not np.all(np.isfinite(out)):
            raise VoiceError("the voice model produced NaN or infinite samples")
        return out

    def lookahead(self) -> float:
        return 0.0  # the right context is the engine's, and counted there

    def reset(self) -> None:
        self.stream.reset()
        self.stream.reset_noise(STREAM_SEED)

    def close(self) -> None:
        self.stream.reset()

    def profile(self) -> dict:
        """Wall time per stage of the blocks so far (resample, content, index, f0, synth)."""
        return self.stream.timer.summary()


def build_rvc_voice(
    settings: VoiceSettings,
    progress=None,
    *,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> RvcVoice:
    """The one way an RVC voice is built (the app, ``convert``, ``bench``, ``live``): the model
    and index the settings name (a library name or a path), the installed shared weights, the
    pitch estimator, backend, precision and device; pitch, formant, index rate and protect set.
    ``progress(stage, i, n)`` hears about first-time ONNX exports. Raises VoiceError saying what
    is missing or wrong."""
    from voicegui.modelhub import ModelError

    from . import shared_weights
    from .components import PartsError, load_parts
    from .frontends import build_stream
    from .index import FeatureIndex, FeatureIndexError
    from .library import LibraryError, resolve

    try:
        shared = shared_weights.installed_files()
    except ModelError as exc:
        raise VoiceError(str(exc)) from exc
    try:
        found = resolve(settings.model, settings.index)
    except LibraryError as exc:
        raise VoiceError(str(exc)) from exc
    try:
        parts = load_parts(
            found.model,
            shared,
            settings.f0_method,
            settings.backend,
            settings.precision,
            settings.device,
            threads=threads,
            cache_dir=cache_dir,
            progress=progress,
        )
    except PartsError as exc:
        raise VoiceError(f"the RVC voice '{found.name}' cannot be loaded: {exc}") from exc
    index = None
    if found.index is not None:
        try:
            index = FeatureIndex.load(found.index)
        except FeatureIndexError as exc:
            raise VoiceError(f"the index of '{found.name}' cannot be used: {exc}") from exc
    try:
        stream = build_stream(
            parts.synth, parts.content, parts.estimator, index, settings.f0_method
        )
    except ValueError as exc:
        raise VoiceError(f"the RVC voice '{found.name}' cannot be used: {exc}") from exc
    voice = RvcVoice(stream, threads=threads, label=found.name)
    voice.provider = parts.provider
    voice.warnings = parts.warnings + parts.notes
    voice.update(live_values(settings))
    return voice
