"""Measure a running engine through a loop: its output returns to its input (JACK wiring, a
loopback cable, a virtual microphone). Clicks injected into the input time the round trip against
the computed latency; a tone checks the voice's pitch on the way.

The audio host runs these on a command thread while the engine plays, so this module is imported
with the host: importing it then would run Python beside the block thread's first blocks.
"""

from __future__ import annotations

import threading

import numpy as np

from voicegui.settings import Settings


def clicks_through(engine, seconds: float, clicks: int = 5) -> dict:
    """Inject clicks into the input of a running, looped-back engine; time their returns."""
    sr = engine.sample_rate
    total = int(seconds * sr)
    record = np.zeros(total + sr, dtype=np.float32)
    state = {"pos": 0}
    every = max(1, total // max(1, clicks))
    click_at = set(range(sr // 2, total - sr // 4, every))

    def hook(block: np.ndarray) -> None:  # runs on the audio thread before the voice
        p = state["pos"]
        for c in click_at:
            if p <= c < p + len(block):
                block[c - p] += 0.8
        end = min(len(record), p + len(block))
        record[p:end] = block[: end - p]
        state["pos"] = p + len(block)
        if state["pos"] >= total:
            done.set()

    # the caller sleeps until the hook says it has it all: no thread polls meanwhile
    done = threading.Event()
    engine.block_hook = hook
    done.wait(seconds + 2.0)
    engine.block_hook = None
    snap = engine.snapshot()
    trips = click_returns(record[: state["pos"]], sorted(click_at), sr // 2)
    result = round_trip_summary(engine, snap, "jack-loopback", len(click_at), trips)
    result["period_frames"] = engine.io.max_frames if engine.io else None
    return result


def probe_open_loop(engine, seconds: float, clicks: int = 5, tone_hz: float = 220.0) -> dict:
    """Time clicks and send a tone through a running engine whose output returns to its input
    outside the app. Open loop: the voice hears only the probe (the returning signal is recorded,
    then replaced), so nothing feeds back. First half: ``clicks`` clicks; second half: the tone."""
    sr = engine.sample_rate
    total = int(seconds * sr)
    tail = sr  # keep recording a second after the probe: the last of it is on its way back
    probe = np.zeros(total + tail, dtype=np.float32)
    first, half = sr // 2, total // 2
    every = max(1, (half - first) // max(1, clicks))
    click_at = list(range(first, half, every))[: max(1, clicks)]
    probe[click_at] = 0.8
    tone_span = (half, total) if tone_hz > 0 else (0, 0)
    if tone_hz > 0:
        probe[half:total] = harmonic_tone(tone_hz, total - half, sr)
    returned = np.zeros(total + tail, dtype=np.float32)
    state = {"pos": 0}
    done = threading.Event()

    def hook(block: np.ndarray) -> None:  # on the audio thread, before the voice
        p = state["pos"]
        end = min(len(returned), p + len(block))
        returned[p:end] = block[: end - p]
        block[:] = 0.0
        block[: end - p] = probe[p:end]
        state["pos"] = p + len(block)
        if state["pos"] >= len(returned):
            done.set()

    engine.block_hook = hook
    done.wait(seconds + tail / sr + 5.0)
    engine.block_hook = None
    snap = engine.snapshot()
    rec = returned[: min(state["pos"], len(returned))]
    trips = click_returns(rec, click_at, every)
    result = round_trip_summary(engine, snap, "loopback", len(click_at), trips)
    lat = snap.latency
    measured = result["measured_ms"] / 1e3 if result["measured_ms"] is not None else None
    if tone_hz > 0:
        pitch = float(getattr(engine, "settings", Settings()).voice.pitch)
        # the tone's steady middle, moved by the measured round trip (or the computed one)
        delay = int(round((measured if measured is not None else lat.end_to_end) * sr))
        a, b = tone_span[0] + delay, tone_span[1] + delay
        margin = (b - a) // 5
        found = tone_f0(rec[a + margin : b - margin], sr)
        expected = tone_hz * 2.0 ** (pitch / 12.0)
        result["tone"] = {
            "sent_hz": tone_hz,
            "pitch_semitones": pitch,
            "expected_hz": expected,
            "found_hz": found or None,
            "cents_off": 1200.0 * np.log2(found / expected) if found else None,
            "sent_at_s": [tone_span[0] / sr, tone_span[1] / sr],
        }
    result["returned"] = rec
    return result


def click_returns(rec: np.ndarray, click_at: list[int], span: int) -> list[int]:
    """Frames from each click sent to its loudest return within ``span`` (the click's own first
    16 frames skipped); a click with nothing above 0.1 in that span did not come back."""
    trips = []
    for c in click_at:
        window = np.abs(rec[c + 16 : c + span])
        if len(window) and window.max() > 0.1:
            trips.append(16 + int(np.argmax(window)))
    return trips


def round_trip_summary(engine, snap, mode: str, sent: int, trips: list[int]) -> dict:
    """Clicks timed through a running engine against its computed latency, and its counters;
    the median round trip is published as the measured latency."""
    sr = engine.sample_rate
    lat = snap.latency
    measured = float(np.median(trips)) / sr if trips else None
    engine.metrics.publish(measured_latency=measured)
    return {
        "mode": mode,
        "sample_rate": sr,
        "clicks_sent": sent,
        "clicks_returned": len(trips),
        "round_trip_frames": trips,
        "measured_ms": measured * 1e3 if measured is not None else None,
        "computed_end_to_end_ms": lat.end_to_end * 1e3,
        "difference_ms": (measured - lat.end_to_end) * 1e3 if measured is not None else None,
        "latency": lat.as_dict(),
        "xruns_in": snap.xruns_in,
        "xruns_out": snap.xruns_out,
        "underruns": snap.underruns,
        "dropped_blocks": snap.dropped_blocks,
        "compute": engine.metrics.compute_percentiles(),
        "slowest_blocks": slowest_blocks(engine.metrics.history()),
    }


def slowest_blocks(history: dict[str, np.ndarray], n: int = 3) -> list[dict]:
    """The ``n`` blocks that took longest to compute, and when (s after the oldest block kept:
    the engine's start in a run shorter than the history), to tell a slow start from a stall."""
    t, compute = history["t"], history["compute_ms"]
    if len(t) == 0:
        return []
    return [
        {"t_s": round(float(t[i] - t[0]), 3), "compute_ms": round(float(compute[i]), 3)}
        for i in np.argsort(compute)[::-1][:n]
    ]


def harmonic_tone(hz: float, n: int, sr: int) -> np.ndarray:
    """A steady voiced-like tone: 8 harmonics at 1/k, peak 0.5."""
    t = np.arange(n) / sr
    x = sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, 9) if k * hz < sr / 2 - 1000)
    x = np.asarray(x, dtype=np.float64)
    return (0.5 * x / max(1e-9, np.max(np.abs(x)))).astype(np.float32)


def tone_f0(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 1000.0) -> float:
    """The fundamental of a steady periodic signal (the built-in voice's YIN pitch tracker);
    0.0 when it is silent or not periodic."""
    from voicegui.voices.dsp import yin_period

    x = np.asarray(x, dtype=np.float64)
    period = yin_period(x - np.mean(x), sr, fmin, fmax)
    return float(sr / period) if period else 0.0
