"""How long the voice takes from voicegui's output stream to a program recording the virtual
microphone: pulses played into its sink, recorded back from its source by a second stream.

The two streams are separate PortAudio streams (each aimed at its end by the variables of
``virtual_mic.Route``), so their frame counters share no clock; each callback notes the monotonic
time instead: a pulse leaves when the player's callback hands its buffer over (plus its offset in
the buffer) and arrives when the recorder's callback receives it (less what came after it). The
offset includes the player's buffer, the server's graph (null sink, monitor, remap) and one
buffer of the recorder, i.e. what another program at the same latency setting waits for.

These are Python callbacks: this is a short measurement, never the live path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from voicegui.audio.backend import sounddevice
from voicegui.audio.virtual_mic import Route, environment

PULSE_AMPLITUDE = 0.25  # quiet enough for a listener, far above the digital path's silence
PULSE_WIDTH = 8  # samples: survives a resampler in the server without losing its peak
THRESHOLD = PULSE_AMPLITUDE / 2
LEAD_IN = 0.15  # s before the first pulse, while both streams settle


def measure_route(
    route: Route,
    device: Any,
    rate: int = 48000,
    latency: str | float = "low",
    pulses: int = 6,
    spacing: float = 0.06,
) -> dict:
    """Play ``pulses`` pulses into the virtual microphone through ``device`` (the route's
    PortAudio device) and time their arrival at a second stream recording its source.

    Returns measured_ms (median) and the spread, the pulses sent and returned, and the latency
    PortAudio reports for both streams. ``spacing`` bounds what can be measured: a pulse that
    takes longer than that is not paired (and not counted as returned)."""
    sd = sounddevice()
    period = round(spacing * rate)
    first = round(LEAD_IN * rate)
    starts = [first + i * period for i in range(pulses)]
    end = starts[-1] + period
    sent: list[float] = []
    chunks: list[tuple[float, np.ndarray]] = []
    done = threading.Event()
    pos = [0]

    def play(outdata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        now = time.monotonic()
        outdata.fill(0.0)
        p = pos[0]
        for s in starts:
            lo, hi = max(s, p), min(s + PULSE_WIDTH, p + frames)
            if lo < hi:
                outdata[lo - p : hi - p] = PULSE_AMPLITUDE
                if lo == s:
                    sent.append(now + (s - p) / rate)
        pos[0] = p + frames
        if pos[0] >= end:
            done.set()

    def record(indata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        chunks.append((time.monotonic(), indata[:, 0].copy()))

    common = dict(samplerate=rate, dtype="float32", latency=latency, device=device.index)
    with environment(route.record_env):
        recorder = sd.InputStream(channels=1, callback=record, **common)
    try:
        with environment(route.play_env):
            player = sd.OutputStream(
                channels=min(2, device.max_output_channels), callback=play, **common
            )
        try:
            recorder.start()
            player.start()
            done.wait(end / rate + 2.0)
            time.sleep(spacing)  # the last pulse's way back
            player.stop()
            recorder.stop()
            reported = (float(player.latency), float(recorder.latency))
        finally:
            player.close()
    finally:
        recorder.close()
    arrived = _rising_edges(chunks, rate)
    trips = []
    for t in sent:
        later = [a - t for a in arrived if 0.0 <= a - t < spacing]
        if later:
            trips.append(min(later))
    return {
        "measured_ms": float(np.median(trips)) * 1e3 if trips else None,
        "spread_ms": float(max(trips) - min(trips)) * 1e3 if trips else None,
        "pulses_sent": len(sent),
        "pulses_returned": len(trips),
        "player_reported_ms": reported[0] * 1e3,
        "recorder_reported_ms": reported[1] * 1e3,
        "sample_rate": rate,
    }


def _rising_edges(chunks: list[tuple[float, np.ndarray]], rate: int) -> list[float]:
    """Arrival times of the pulses: where the recording rises above the threshold."""
    out = []
    above = False
    for t_end, x in chunks:
        hot = np.abs(x) > THRESHOLD
        for i in np.flatnonzero(hot != np.concatenate(([above], hot[:-1]))):
            if hot[i]:
                out.append(t_end - (len(x) - i) / rate)
        if len(x):
            above = bool(hot[-1])
    return out
