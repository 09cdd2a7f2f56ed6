"""Blocks of the kit's stream input through a voice, in the engine's window layout."""

from __future__ import annotations

import numpy as np

from voicegui.voices.base import BlockInfo

RATE = 22050
# Seed-VC settings light enough for a CPU, and the window layout the engine builds for the
# tests' streaming geometry (block 0.1 s, left 0.5 s + crossfade 0.02 s + search 0.01 s,
# right 0.02 s, SOLA margin = crossfade + search).
PARAMS = {
    "diffusion_steps": 2,
    "cfg_rate": 0.5,
    "max_prompt_time": 1.0,
    "extra_dit_left_time": 0.2,
}
BLOCK, RIGHT, SOLA_EXTRA = 2205, 441, 441 + 220
LEFT = 11025 + SOLA_EXTRA


def info(k: int) -> BlockInfo:
    return BlockInfo(k, BLOCK, LEFT, RIGHT, SOLA_EXTRA)


def windows(source: np.ndarray, n: int) -> list[np.ndarray]:
    size = LEFT + BLOCK + RIGHT
    x = np.tile(source, -(-(size + n * BLOCK) // len(source))).astype(np.float32)
    return [x[k * BLOCK : k * BLOCK + size] for k in range(n)]


def local_blocks(model, reference: np.ndarray, wins: list[np.ndarray]) -> list[np.ndarray]:
    """The app's local Seed-VC voice at the start of a stream (after reset, like the engine)."""
    from voicegui.voices.seedvc.voice import SeedVCVoice

    voice = SeedVCVoice(model, vad=False, threads=1)
    voice.update(PARAMS)
    voice.prepare(reference, RATE)
    voice.reset()
    return [voice.convert(w, info(k)) for k, w in enumerate(wins)]


def remote_voice(server, **kw):
    from voicegui.remote.client import RemoteSeedVC

    # patience of many blocks: these tests are about values, not about a loaded CPU's timing
    voice = RemoteSeedVC(server.address, server.token, patience=200.0, **kw)
    voice.update(PARAMS)
    return voice
