"""Shared pieces of the RVC front-end tests: the models built from the kit, and the numbers the
tests derive from the kit's arrays (rates, keys, block geometry) instead of hard-coding them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from voicegui.voices.rvc import f0 as f0post
from voicegui.voices.rvc.fcpe import Fcpe, load_fcpe
from voicegui.voices.rvc.hubert import HubertContent, load_hubert
from voicegui.voices.rvc.rmvpe import Rmvpe, load_rmvpe

HOP_16K = 160  # f0 frames at 16 kHz (the README's convention, 100 frames/s)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@lru_cache(maxsize=2)
def kit_hubert(assets: Path) -> HubertContent:
    return load_hubert(assets / "hubert_base")


@lru_cache(maxsize=2)
def kit_rmvpe(assets: Path) -> Rmvpe:
    return load_rmvpe(assets / "rmvpe" / "rmvpe.pt")


@lru_cache(maxsize=1)
def bundled_fcpe() -> Fcpe:
    return load_fcpe()


def key_from(raw_f0: np.ndarray, shifted: np.ndarray) -> float:
    """The semitone shift that turned the filled ``raw_f0`` into ``shifted``, to the cent (the
    settings are whole or fractional semitones: the real-time key is pitch minus formant)."""
    filled = f0post.fill_unvoiced(np.asarray(raw_f0, dtype=np.float64).reshape(-1))
    voiced = filled > 0
    ratio = np.median(np.asarray(shifted, dtype=np.float64).reshape(-1)[voiced] / filled[voiced])
    return round(1200 * math.log2(ratio)) / 100


def block_numbers(expected: dict, stream: str, name: str) -> list[int]:
    pattern = re.compile(rf"{stream}_b(\d+)_{name}$")
    return sorted(int(m.group(1)) for k in expected if (m := pattern.match(k)))


@dataclass(frozen=True)
class StreamGeometry:
    """The integers of one real-time stream, read off its arrays."""

    stream: str
    blocks: list[int]
    block_frame: int  # model-rate samples per block
    zc: int  # model-rate samples per 10 ms (= synthesizer samples per frame)
    sr: int
    return_length: int
    return_length2: int

    @property
    def block_frame_16k(self) -> int:
        return self.block_frame * 16000 // self.sr

    @property
    def shift_frames(self) -> int:
        return self.block_frame_16k // HOP_16K


def stream_geometry(inputs: dict, expected: dict, stream: str) -> StreamGeometry:
    blocks = block_numbers(expected, stream, "res_new")
    block_frame = inputs[f"{stream}_in"].shape[0] // len(blocks)
    assert block_frame * len(blocks) == inputs[f"{stream}_in"].shape[0]
    # the callback rewrites 160 * (block_frame // zc + 1) samples of the 16 kHz ring
    per_block_16k = expected[f"{stream}_b{blocks[0]}_res_new"].shape[0] // HOP_16K - 1
    zc = block_frame // per_block_16k
    b = blocks[0]
    return StreamGeometry(
        stream=stream,
        blocks=blocks,
        block_frame=block_frame,
        zc=zc,
        sr=100 * zc,
        return_length=expected[f"{stream}_b{b}_infer_wav"].shape[-1] // zc,
        return_length2=expected[f"{stream}_b{b}_synth_out"].shape[-1] // zc,
    )
