"""Speech detection for the engine's gate hook: Silero VAD, whose weights ship in its wheel.

A neural voice spends most of a block's budget whether the block holds speech or not; asking the
VAD first (about 0.1 ms per 32 ms of audio on a CPU) lets the engine skip non-speech blocks
entirely. The engine's gate adds the hold time, so word endings are not cut.
"""

from __future__ import annotations

import numpy as np

VAD_RATE = 16000
CHUNK = 512  # samples at 16 kHz the model takes per call


class SileroSpeechDetector:
    """Callable ``(block, sample_rate) -> bool``, stateful across consecutive blocks."""

    def __init__(self, threshold: float = 0.5) -> None:
        from voicegui.threads import preserved_torch_threads

        with preserved_torch_threads():  # silero_vad sets torch to 1 thread when imported
            from silero_vad import load_silero_vad

            self.model = load_silero_vad(onnx=True)  # onnxruntime, 1 thread: no torch here
        self.threshold = threshold
        self._pending = np.zeros(0, dtype=np.float32)
        self._resampler = None
        self._rate = 0
        self.last_probability = 0.0

    def reset(self) -> None:
        self.model.reset_states()
        self._pending = np.zeros(0, dtype=np.float32)
        self._resampler = None

    def __call__(self, block: np.ndarray, sample_rate: int) -> bool:
        import soxr
        import torch

        if sample_rate != self._rate or self._resampler is None:
            self._rate = sample_rate
            self._resampler = (
                None
                if sample_rate == VAD_RATE
                else soxr.ResampleStream(sample_rate, VAD_RATE, 1, dtype="float32", quality="LQ")
            )
        x = block if self._resampler is None else self._resampler.resample_chunk(block)
        self._pending = np.concatenate([self._pending, x.astype(np.float32)])
        best = 0.0
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            best = max(best, float(self.model(torch.from_numpy(chunk.copy()), VAD_RATE)))
        if best:
            self.last_probability = best
        return self.last_probability >= self.threshold
