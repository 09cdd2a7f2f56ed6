"""The protocol every voice implements, and the small value types it exchanges with the engine.

Two kinds of voice exist:

* windowed (``stateful = False``): each call gets a window of audio at the voice's rate made of
  ``left`` context + ``block`` + ``right`` context and returns ``block + sola_extra`` samples that
  end ``right`` samples before the end of the window. The engine splices consecutive outputs with
  a SOLA search and a crossfade. Neural voices work this way.
* stateful (``stateful = True``): the voice keeps its own history and returns exactly ``block``
  samples per call, already continuous with the previous call, delayed by ``lookahead()`` seconds.
  The engine feeds it only the newest block and skips SOLA. The built-in DSP voice works this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class BlockInfo:
    """Where the block sits inside the window handed to ``Voice.convert`` (all in voice samples)."""

    index: int  # running block counter since the stream started
    block: int  # samples the block advances
    left: int  # context before the block
    right: int  # context after the block (lookahead)
    sola_extra: int  # extra samples wanted before the block for the SOLA search + crossfade


class VoiceError(RuntimeError):
    """A voice cannot be built or prepared (missing weights, bad reference, ...)."""


@runtime_checkable
class Voice(Protocol):
    name: str
    stateful: bool

    def configure(self, device_rate: int) -> int:
        """Called once per stream; returns the sample rate the voice works at."""

    def update(self, params: dict) -> None:
        """Apply voice parameters (pitch, steps, cfg, ...) between blocks."""

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        """Heavy per-reference work, cached by the voice."""

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        """Convert one block; see the module docstring for the window layout."""

    def lookahead(self) -> float:
        """Seconds of delay the voice adds on top of the engine's framing."""

    def reset(self) -> None:
        """Forget stream state (after a gap, an error or a restart)."""

    def close(self) -> None: ...
