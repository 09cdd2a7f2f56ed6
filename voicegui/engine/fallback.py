"""The built-in voice beside a neural voice: what plays, crossfaded, when a block of the neural
voice fails or comes back late (``on_voice_error = 'builtin'``), so that the listener hears a
changed voice rather than the speaker's own.

It runs on every block, whether or not it is heard, so that it has its history (the pitch
tracker's window, the grains in flight) when it is needed. Its input is delayed so that its
output lands where the neural voice's would: the dry path's delay less the built-in voice's
own lookahead.
"""

from __future__ import annotations

import numpy as np

from voicegui.engine.delay import DelayLine
from voicegui.voices.base import BlockInfo
from voicegui.voices.dsp import DSPVoice


class BuiltinFallback:
    def __init__(self, device_rate: int, block: int, dry_delay: int) -> None:
        self.voice = DSPVoice()
        self.voice.configure(device_rate)
        self.block = block
        # where the neural voice's output lands: its own lookahead is part of that delay
        self.delay = DelayLine(max(0, dry_delay - self.voice.delay), block)
        self.index = 0

    def update(self, params: dict) -> None:
        self.voice.update(params)

    def process(self, x: np.ndarray) -> np.ndarray:
        """One block of the (gained, suppressed) input -> one block of the built-in voice."""
        y = self.voice.convert(self.delay.process(x), BlockInfo(self.index, self.block, 0, 0, 0))
        self.index += 1
        return np.asarray(y, dtype=np.float32)

    def reset(self) -> None:
        self.voice.reset()
