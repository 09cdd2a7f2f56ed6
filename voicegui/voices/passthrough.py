"""Passthrough: returns its input. Exercises the windowed path (framing + SOLA) with no model."""

from __future__ import annotations

import numpy as np

from voicegui.voices.base import BlockInfo


class PassthroughVoice:
    name = "passthrough"
    stateful = False
    provider = "CPU"

    def configure(self, device_rate: int) -> int:
        return device_rate

    def update(self, params: dict) -> None:
        pass

    def prepare(self, reference: np.ndarray | None, sr: int) -> None:
        pass

    def convert(self, window: np.ndarray, info: BlockInfo) -> np.ndarray:
        end = len(window) - info.right
        return window[end - info.block - info.sola_extra : end]

    def lookahead(self) -> float:
        return 0.0

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass
