"""Streaming sample-rate conversion with a fixed, known delay.

soxr's streaming resampler keeps the timeline aligned but hands its output over in bursts, so a
fixed-size block in does not always give a fixed-size block out. A small FIFO pre-filled with the
largest shortfall turns that into exactly ``chunk_out`` samples per call and a constant delay of
``delay`` output samples, which the latency budget reports.
"""

from __future__ import annotations

import math

import numpy as np

from voicegui.audio.ringbuffer import RingBuffer

# 'LQ' keeps the buffering delay near 20 ms downward and ~1 ms upward; 'HQ' roughly doubles it.
DEFAULT_QUALITY = "LQ"


def block_quantum(device_rate: int, voice_rate: int) -> int:
    """Smallest device-rate block whose length is also a whole number of voice-rate samples."""
    return device_rate // math.gcd(device_rate, voice_rate)


class StreamResampler:
    def __init__(self, in_rate: int, out_rate: int, chunk_in: int, quality: str = DEFAULT_QUALITY):
        if (chunk_in * out_rate) % in_rate:
            raise ValueError(f"{chunk_in} samples at {in_rate} Hz is not whole at {out_rate} Hz")
        self.in_rate, self.out_rate = in_rate, out_rate
        self.chunk_in = chunk_in
        self.chunk_out = chunk_in * out_rate // in_rate
        self.quality = quality
        self._out = np.zeros(self.chunk_out, dtype=np.float32)
        self.delay = 0 if in_rate == out_rate else self._measure_shortfall()
        self._fifo = RingBuffer(self.delay + 4 * self.chunk_out + 64)
        self.reset()

    def _new_stream(self):
        import soxr

        return soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality
        )

    def _measure_shortfall(self) -> int:
        """Largest lag of soxr's output count behind the ideal count, over a steady run."""
        stream = self._new_stream()
        zeros = np.zeros(self.chunk_in, dtype=np.float32)
        produced = shortfall = 0
        for i in range(1, 96):
            produced += len(stream.resample_chunk(zeros))
            shortfall = max(shortfall, i * self.chunk_out - produced)
        return shortfall

    @property
    def delay_seconds(self) -> float:
        return self.delay / self.out_rate

    def reset(self) -> None:
        self._stream = None if self.in_rate == self.out_rate else self._new_stream()
        self._fifo.skip(self._fifo.available())
        if self.delay:
            self._fifo.write(np.zeros(self.delay, dtype=np.float32))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """chunk_in samples in, chunk_out samples out (a view into an internal buffer)."""
        if self._stream is None:
            return chunk
        self._fifo.write(self._stream.resample_chunk(chunk))
        got = self._fifo.read_into(self._out)
        if got < self.chunk_out:  # cannot happen after the shortfall prefill; stay safe anyway
            self._out[got:] = 0.0
        return self._out
