"""Seed-VC behind the Voice protocol: a windowed voice at 22.05 kHz.

Beyond upstream's real-time GUI: the style vector comes from the whole reference (the setting
``style_from_prompt`` takes it from the cropped prompt, as upstream does); noise is drawn
from a generator seeded once per stream instead of fresh unseeded noise every block; the vocoder
runs only over the frames the block needs plus its receptive field; the reference work is cached;
and non-speech blocks never reach the model (Silero VAD as the engine's gate hook).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from voicegui.settings import VoiceSettings
from voicegui.threads import compute_threads, own_torch_threads
from voicegui.voices.base import BlockInfo, VoiceError
from voicegui.voices.reference import mono_reference, reference_at
from voicegui.voices.seedvc.model import SAMPLE_RATE, Prompt, SeedVCModel, plan_block

if TYPE_CHECKING:
    from voicegui.voices.onnx.runtime import OrtSeedVCModel

STREAM_SEED = 1234


class SeedVCVoice:
    name = "seedvc"
    stateful = False
    needs_reference = True

    def __init__(
        self,
        model: SeedVCModel | OrtSeedVCModel,
        vad: bool = True,
        trim_vocoder: bool = True,
        threads: int | None = None,
    ) -> None:
        self.model = model
        self.steps, self.cfg = 10, 0.7
        self.max_prompt_s, self.dit_left_s = 3.0, 0.5
        self.style_from_prompt = False  # True: style of the cropped prompt only (upstream)
        self.trim_vocoder = trim_vocoder
        # the voice owns torch's intra-op threads: set on whichever thread runs a block, since
        # an import (silero_vad) or an earlier torch user may have changed them
        self.threads = threads or compute_threads()
        self._reference: np.ndarray | None = None
        self._prompt: Prompt | None = None
        self._prompt_key: tuple | None = None
        self._clip_key: tuple | None = None
        self._lock = threading.Lock()  # prepare() may come from the GUI while blocks run
        self.speech_detector = None
        if vad:
            try:
                from voicegui.voices.vad import SileroSpeechDetector

                self.speech_detector = SileroSpeechDetector()
            except Exception:  # VAD is an optimisation; the level gate still works without it
                self.speech_detector = None
        own_torch_threads(self.threads)

    @property
    def provider(self) -> str:
        return self.model.provider

    @property
    def warnings(self) -> list[str]:
        """What the user should know about how the model runs (e.g. a GPU that failed)."""
        return list(getattr(self.model, "warnings", []))

    # ---- protocol ---------------------------------------------------------------------------
    def configure(self, device_rate: int) -> int:
        return SAMPLE_RATE

    def update(self, params: dict) -> None:
        self.steps = int(params.get("diffusion_steps", self.steps))
        self.cfg = float(params.get("cfg_rate", self.cfg))
        self.dit_left_s = float(params.get("extra_dit_left_time", self.dit_left_s))
        max_prompt = float(params.get("max_prompt_time", self.max_prompt_s))
        from_prompt = bool(params.get("style_from_prompt", self.style_from_prompt))
        if (max_prompt, from_prompt) != (self.max_prompt_s, self.style_from_prompt):
            self.max_prompt_s, self.style_from_prompt = max_prompt, from_prompt
            if self._reference is not None:
                self._build_prompt()

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        ref = mono_reference(reference)
        # the same clip again (a restart, a re-selected file) reuses the cached prompt
        clip_key = (sr, len(ref), hashlib.blake2b(ref.tobytes(), digest_size=16).digest())
        if clip_key == self._clip_key and self._prompt is not None:
            return
        ref = reference_at(ref, sr, SAMPLE_RATE)
        self._reference = ref
        self._clip_key = clip_key
        self._build_prompt()

    def _build_prompt(self) -> None:
        key = (self._clip_key, self.max_prompt_s, self.style_from_prompt)
        if key == self._prompt_key:
            return
        own_torch_threads(self.threads)
        prompt = self.model.make_prompt(
            self._reference, self.max_prompt_s, style_from_prompt=self.style_from_prompt
        )
        with self._lock:
            self._prompt, self._prompt_key = prompt, key

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        with self._lock:
            prompt = self._prompt
        if prompt is None:
            raise VoiceError("no reference prepared: choose a reference clip")
        own_torch_threads(self.threads)
        out_n = info.block + info.sola_extra
        left_s = (info.left - info.sola_extra) / SAMPLE_RATE  # context before the SOLA margin
        plan = plan_block(left_s, self.dit_left_s, out_n, info.right)
        wav = torch.from_numpy(np.ascontiguousarray(window)).to(self.model.device)
        frames = self.model.vocoder_frames_for(plan) if self.trim_vocoder else None
        out = self.model.infer_block(wav, prompt, plan, self.steps, self.cfg, vocoder_frames=frames)
        return out.float().cpu().numpy()

    def lookahead(self) -> float:
        return 0.0  # the right context is the engine's, and is already counted there

    def reset(self) -> None:
        # a new stream (or after a gap): restart the seeded noise so runs are repeatable
        self.model.cfm._generators.clear()
        self.model.cfm.seed = STREAM_SEED
        self.model.vocoder.reset_rng(STREAM_SEED)
        if self.speech_detector is not None:
            self.speech_detector.reset()

    def close(self) -> None:
        self._prompt = None

    def profile(self) -> dict:
        return self.model.timer.summary()


def installed_files() -> dict:
    """The installed Seed-VC model's files (voicegui models download seedvc)."""
    from voicegui import modelhub

    if not modelhub.seedvc_installed():
        raise VoiceError(
            "Seed-VC weights are not installed: run `voicegui models download "
            "seedvc` (or `voicegui models import seedvc DIR`)"
        )
    folder = modelhub.model_dir("seedvc")
    return dict(
        dit=folder / modelhub.entry("seedvc").file("dit").local_name,
        hift=folder / "hift.pt",
        campplus=folder / "campplus_cn_common.bin",
        content_dir=folder,
    )


def build_seedvc_voice(
    files: dict,
    settings: VoiceSettings,
    progress=None,
    *,
    threads: int | None = None,
    cache_dir: Path | None = None,
    spin: bool = False,
) -> SeedVCVoice:
    """The one way a Seed-VC voice is built (the app, ``convert``, ``bench`` and the backend
    comparison harness): model files -> model at the settings' backend/precision -> voice."""
    if settings.backend == "onnx":
        # exported once per checkpoint into the user cache (minutes the first time)
        from voicegui.voices.onnx.runtime import OrtSeedVCModel

        model = OrtSeedVCModel.load(
            **files,
            device=settings.device,
            precision=settings.precision,
            cache_dir=cache_dir,
            threads=threads,
            progress=progress,
            spin=spin,
        )
    else:
        model = SeedVCModel.load(**files, device=settings.device, precision=settings.precision)
    voice = SeedVCVoice(model, threads=threads)
    voice.update(
        {
            "diffusion_steps": settings.diffusion_steps,
            "cfg_rate": settings.cfg_rate,
            "max_prompt_time": settings.max_prompt_time,
            "style_from_prompt": settings.style_from_prompt,
        }
    )
    if settings.reference:
        from voicegui.engine.offline import read_audio, to_mono

        data, sr = read_audio(Path(settings.reference))
        voice.prepare(to_mono(data), sr)
    return voice


def create_seedvc_voice(settings: VoiceSettings, progress=None) -> SeedVCVoice:
    """The installed Seed-VC model as a voice."""
    return build_seedvc_voice(installed_files(), settings, progress)
