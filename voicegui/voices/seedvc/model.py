"""The assembled Seed-VC real-time model: loading, the reference prompt, one block of inference.

Stages and names follow the parity kit: content features -> length regulator -> CFM (DiT) with
the reference prompt and style -> HiFT vocoder. Per-stage wall times are kept for the bench.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voicegui.voices.seedvc.campplus import CAMPPlus, load_campplus, style_vector
from voicegui.voices.seedvc.cfm import CFM, load_dit_checkpoint
from voicegui.voices.seedvc.features import mel_spectrogram, resample_22k_to_16k
from voicegui.voices.seedvc.hift import HiFTGenerator, load_hift
from voicegui.voices.seedvc.length_regulator import InterpolateRegulator
from voicegui.voices.timing import Timer

SAMPLE_RATE = 22050
HOP = 256
CONTENT_FPS = 50  # content frames per second (16 kHz / 320)
VOCODER_MARGIN = 8  # mel frames of left context the vocoder needs around what it emits

ContentFn = Callable[[torch.Tensor], torch.Tensor]  # 16 kHz wave (1, N) -> (1, T, 1024)


def pick_device(choice: str = "auto") -> torch.device:
    """CUDA > MPS > CPU unless the user chose one."""
    if choice and choice != "auto":
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Prompt:
    """Everything derived from the reference clip; computed once per (reference, max prompt)."""

    mel: torch.Tensor  # (1, 80, P)
    cond: torch.Tensor  # (1, P, 384)
    style: torch.Tensor  # (1, 192)


@dataclass(frozen=True)
class BlockPlan:
    """Frame bookkeeping of one real-time block, in the upstream units (20 ms content frames)."""

    drop_frames: int  # content frames before the DiT context
    mel_frames: int  # mel frames the CFM generates for the block
    out_samples: int  # samples returned (block + SOLA margin)
    right_samples: int  # lookahead samples generated but not returned


def plan_block(
    left_s: float, dit_left_s: float, out_samples: int, right_samples: int, sr: int = SAMPLE_RATE
) -> BlockPlan:
    """Upstream's arithmetic: skip_head + return_length + skip_tail - (ce - dit) difference."""
    dit_left_s = min(dit_left_s, left_s)
    skip_head = round(left_s * CONTENT_FPS)
    ret = round(out_samples / sr * CONTENT_FPS)
    tail = round(right_samples / sr * CONTENT_FPS)
    drop = int((left_s - dit_left_s) * CONTENT_FPS)
    mel = int((skip_head + ret + tail - drop) / CONTENT_FPS * sr // HOP)
    return BlockPlan(drop, mel, out_samples, right_samples)


class SeedVCModel:
    def __init__(
        self,
        cfm: CFM,
        regulator: InterpolateRegulator,
        vocoder: HiFTGenerator,
        speaker: CAMPPlus,
        content: ContentFn | None,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.cfm, self.regulator, self.vocoder, self.speaker = cfm, regulator, vocoder, speaker
        self.content = content
        self.device, self.dtype = device, dtype
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
        self.timer = Timer(device)

    @classmethod
    def load(
        cls,
        dit: Path,
        hift: Path,
        campplus: Path,
        content_dir: Path | None = None,
        device: str = "auto",
        half: bool | None = None,
        precision: str | None = None,
    ) -> SeedVCModel:
        """``precision``: auto|fp32|fp16|bf16|int8 (voices/precision.py says what each does;
        auto is fp16 on CUDA, bf16 on a CPU with native bf16, else fp32); None (for library
        callers and parity checks) is fp16 on CUDA, else fp32. ``half`` is the older switch:
        True means fp16, False fp32."""
        from voicegui.voices import precision as P

        dev = pick_device(device)
        if half is not None:
            precision = "fp16" if half else "fp32"
        elif precision is None:
            precision = "fp16" if dev.type == "cuda" else "fp32"
        chosen = P.resolve(precision, dev.type)
        dtype = P.dtype_of(chosen)
        cfm, lr = load_dit_checkpoint(dit, device=dev, dtype=dtype)
        vocoder = load_hift(hift, device=dev)
        if chosen == "bf16":
            vocoder.set_trunk_dtype(dtype)  # its phase path stays float32
        speaker = load_campplus(campplus, device=dev)
        content = None
        if content_dir is not None:
            from voicegui.voices.seedvc.content import load_content_encoder

            content = load_content_encoder(content_dir, device=dev).to(dtype)
        if chosen == "int8":
            # the transformer holds the DiT's compute; its input/output layers stay float32
            est = cfm.estimator
            est.transformer = P.quantize_linear_int8(est.transformer)
            if content is not None:
                content = P.quantize_linear_int8(content)
        model = cls(cfm, lr, vocoder, speaker, content, dev, dtype)
        model.precision = chosen
        return model

    @property
    def provider(self) -> str:
        name = {"cuda": "CUDA", "mps": "MPS", "cpu": "CPU"}.get(self.device.type, self.device.type)
        return f"{name} (torch, {self.precision})"

    # ---- reference ------------------------------------------------------------------------
    @torch.inference_mode()
    def make_prompt(
        self,
        reference: np.ndarray,
        max_prompt_s: float,
        prompt_content: torch.Tensor | None = None,
        style_from_prompt: bool = False,
    ) -> Prompt:
        """``reference`` at 22.05 kHz. The diffusion prompt is its first ``max_prompt_s``. The
        style comes from the whole clip (a longer sample of the speaker is a better estimate),
        or with ``style_from_prompt`` from the prompt only, as upstream does."""
        ref = torch.as_tensor(
            np.ascontiguousarray(reference), dtype=torch.float32, device=self.device
        )
        crop = ref[: int(SAMPLE_RATE * max_prompt_s)]
        style = style_vector(crop if style_from_prompt else ref, self.speaker)
        mel = mel_spectrogram(crop[None])
        if prompt_content is None:
            prompt_content = self._content(resample_22k_to_16k(crop)[None])
        cond = self.regulator(prompt_content.to(self.device, self.dtype), mel.shape[-1])
        return Prompt(mel.to(self.dtype), cond, style.to(self.dtype))

    def _content(self, wav16k: torch.Tensor) -> torch.Tensor:
        if self.content is None:
            raise RuntimeError("no content encoder loaded (XLS-R weights missing)")
        return self.content(wav16k)

    # ---- one block ------------------------------------------------------------------------
    @torch.inference_mode()
    def infer_block(
        self,
        window: torch.Tensor | None,
        prompt: Prompt,
        plan: BlockPlan,
        steps: int,
        cfg: float,
        *,
        content: torch.Tensor | None = None,
        cfm_noise: torch.Tensor | None = None,
        hift_phase: torch.Tensor | None = None,
        hift_noise: torch.Tensor | None = None,
        vocoder_frames: int | None = None,
    ) -> torch.Tensor:
        """Convert one window (22.05 kHz, (N,)) -> ``plan.out_samples`` samples.

        ``content`` replaces the content encoder's output (parity tests); ``vocoder_frames``
        limits the vocoder to the newest frames (None: all, as upstream does).
        """
        t = self.timer
        if content is None:
            with t("content"):
                content = self._content(resample_22k_to_16k(window)[None])
        with t("length_regulator"):
            cond = self.regulator(
                content[:, plan.drop_frames :].to(self.device, self.dtype), plan.mel_frames
            )
        with t("cfm"):
            mu = torch.cat([prompt.cond, cond], dim=1)
            mel = self.cfm.inference(
                mu, None, prompt.mel, prompt.style, steps, cfg, noise=cfm_noise
            )
            mel = mel[..., prompt.mel.shape[-1] :]
        with t("vocoder"):
            if vocoder_frames is not None and vocoder_frames < mel.shape[-1]:
                mel = mel[..., -vocoder_frames:]
                if hift_noise is not None:
                    hift_noise = hift_noise[..., -vocoder_frames * HOP :]
            wave = self.vocoder(mel.float(), phase=hift_phase, noise=hift_noise)[0]
        end = wave.shape[-1] - plan.right_samples
        return wave[end - plan.out_samples : end]

    def vocoder_frames_for(self, plan: BlockPlan) -> int:
        """Mel frames the vocoder must see to emit the block: what is returned plus margin."""
        return math.ceil((plan.out_samples + plan.right_samples) / HOP) + VOCODER_MARGIN
