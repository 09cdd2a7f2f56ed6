"""Silence gate with hold time: quiet blocks skip the voice entirely (no compute spent).

An optional speech detector (for example a VAD a neural voice provides) can veto blocks that are
loud but not speech; the hold time applies to both, so word endings are not cut.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SpeechDetector = Callable[[np.ndarray, int], bool]
GATE_OFF_DB = -90.0


class Gate:
    def __init__(
        self, threshold_db: float, hold_time: float, detector: SpeechDetector | None = None
    ) -> None:
        self.threshold_db = threshold_db
        self.hold_time = hold_time
        self.detector = detector
        self._quiet_for = float("inf")  # seconds since the last block that passed
        self.open = False

    def update(self, level_db: float, block: np.ndarray, sr: int, block_seconds: float) -> bool:
        """Decide for this block; True means the voice runs."""
        if self.threshold_db <= GATE_OFF_DB and self.detector is None:
            self.open = True
            return True
        passed = level_db >= self.threshold_db
        if passed and self.detector is not None:
            passed = bool(self.detector(block, sr))
        self._quiet_for = 0.0 if passed else self._quiet_for + block_seconds
        self.open = self._quiet_for <= self.hold_time
        return self.open
