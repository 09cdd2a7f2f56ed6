"""Per-block measurements and a lock-free snapshot for readers (the GUI, the bench, tests).

The audio thread is the only writer. It fills preallocated history arrays and then publishes a new
immutable ``MetricsSnapshot`` by rebinding one attribute, which is atomic under the GIL: a reader
never waits for the audio thread and never sees a half-written snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

HISTORY = 8192  # blocks kept for the live graph (about 80 s at 10 ms blocks)


@dataclass(frozen=True)
class LatencyBudget:
    """Seconds, named as in DESIGN.md."""

    block: float = 0.0
    lookahead: float = 0.0
    sola: float = 0.0
    resampler: float = 0.0
    denoise: float = 0.0  # input noise suppressor (RNNoise + its framing), 0 when not running
    network: float = 0.0  # a remote voice's pipeline: its replies come this much later
    buffer: float = 0.0  # output-ring headroom for compute and callback timing (live only)
    device_in: float = 0.0
    device_out: float = 0.0
    # "Send to apps": what the way through the sound server to a program recording the virtual
    # microphone adds beyond device_out (measured when the device is switched on), 0 otherwise
    virtual_mic: float = 0.0

    @property
    def algorithmic(self) -> float:
        return (
            self.block + self.lookahead + self.sola + self.resampler + self.denoise + self.network
        )

    @property
    def end_to_end(self) -> float:
        return self.algorithmic + self.buffer + self.device_in + self.device_out + self.virtual_mic

    def as_dict(self) -> dict[str, float]:
        return {
            "block_ms": self.block * 1e3,
            "lookahead_ms": self.lookahead * 1e3,
            "sola_ms": self.sola * 1e3,
            "resampler_ms": self.resampler * 1e3,
            "denoise_ms": self.denoise * 1e3,
            "network_ms": self.network * 1e3,
            "buffer_ms": self.buffer * 1e3,
            "device_in_ms": self.device_in * 1e3,
            "device_out_ms": self.device_out * 1e3,
            "virtual_mic_ms": self.virtual_mic * 1e3,
            "algorithmic_ms": self.algorithmic * 1e3,
            "end_to_end_ms": self.end_to_end * 1e3,
        }


@dataclass(frozen=True)
class MetricsSnapshot:
    blocks: int = 0
    compute_ms: float = 0.0  # last block
    rtf: float = 0.0  # last block's compute / block duration
    input_db: float = -120.0
    output_db: float = -120.0
    gated: bool = False
    xruns_in: int = 0
    xruns_out: int = 0
    underruns: int = 0  # output samples missing when the device asked (silence was played)
    dropped_blocks: int = 0  # input blocks skipped because the voice fell behind
    drift_corrections: int = 0
    voice_errors: int = 0
    last_error: str = ""
    latency: LatencyBudget = field(default_factory=LatencyBudget)
    measured_latency: float | None = None  # seconds, from a loopback measurement
    provider: str = "CPU"  # where the voice runs, as actually active
    voice: str = ""
    running: bool = False
    status: str = ""  # stopped reason, device loss, ...
    priority: str = ""  # what the OS granted the block thread ("real-time priority: yes (...)")

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "latency"}
        out["latency"] = self.latency.as_dict()
        return out


def newest_records(
    hist: dict[str, np.ndarray], count: int, last: int = HISTORY
) -> dict[str, np.ndarray]:
    """Copies of the newest ``last`` of ``count`` records kept in HISTORY-long rings."""
    n = min(last, count, HISTORY)
    idx = (np.arange(count - n, count) % HISTORY) if n else np.zeros(0, dtype=int)
    return {name: arr[idx].copy() for name, arr in hist.items()}


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS, floored at -120."""
    if len(x) == 0:
        return -120.0
    ms = float(np.dot(x, x)) / len(x)
    return 10.0 * math.log10(ms) if ms > 1e-12 else -120.0


class Metrics:
    """Written by the audio thread only; ``snapshot`` and ``history`` are safe from any thread."""

    FIELDS = ("t", "compute_ms", "rtf", "input_db", "output_db", "latency_ms", "events")
    EVENT_XRUN, EVENT_DROP, EVENT_ERROR, EVENT_UNDERRUN = 1, 2, 4, 8

    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot()
        self._hist = {name: np.zeros(HISTORY, dtype=np.float64) for name in self.FIELDS}
        self._count = 0  # blocks written (monotonic); readers use it as a sequence number

    def publish(self, **changes) -> None:
        self.snapshot = replace(self.snapshot, **changes)

    def record(
        self,
        t: float,
        compute_ms: float,
        rtf: float,
        input_db: float,
        output_db: float,
        latency_ms: float,
        events: int,
    ) -> None:
        i = self._count % HISTORY
        h = self._hist
        h["t"][i], h["compute_ms"][i], h["rtf"][i] = t, compute_ms, rtf
        h["input_db"][i], h["output_db"][i] = input_db, output_db
        h["latency_ms"][i], h["events"][i] = latency_ms, events
        self._count += 1

    def mark_event(self, flag: int) -> None:
        """OR an event (xrun, drop) into the newest record, so the graph can mark it."""
        if self._count:
            i = (self._count - 1) % HISTORY
            self._hist["events"][i] = int(self._hist["events"][i]) | flag

    @property
    def count(self) -> int:
        return self._count

    def history(self, last: int = HISTORY) -> dict[str, np.ndarray]:
        """Copies of the newest ``last`` records, oldest first (a racing write may tear one)."""
        return newest_records(self._hist, self._count, last)

    def compute_percentiles(self, last: int = HISTORY) -> dict[str, float]:
        return self.percentiles_of(self.history(last)["compute_ms"])

    @staticmethod
    def percentiles_of(c: np.ndarray) -> dict[str, float]:
        if len(c) == 0:
            return {}
        p50, p95, p99 = np.percentile(c, [50, 95, 99])
        return {
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
            "max_ms": float(c.max()),
            "mean_ms": float(c.mean()),
        }
