"""``voicegui bench --remote HOST:PORT``: the remote voice through the engine's block path on a
real-time clock, one stream or several on a shared clock (whose blocks the server batches).

Reports the network round trip (an ``info`` call: the network and Triton's hop, no compute),
each block's round trip (network + queue + compute), the server's compute per pass and per
block (a pass's time shared by the blocks it computed together), the batch sizes the server
formed, the blocks it served per second, late and lost blocks, and the latency budget with its
network part.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from voicegui.engine.metrics import Metrics
from voicegui.engine.processor import BlockProcessor
from voicegui.remote.client import RemoteVoice
from voicegui.remote.voices import remote_voice
from voicegui.settings import Settings, with_changes
from voicegui.speech_signal import synthetic_speech

PINGS = 200


def _percentiles(values) -> dict:
    v = np.asarray(list(values), dtype=np.float64)
    if not len(v):
        return {}
    return {
        "p50_ms": float(np.percentile(v, 50)),
        "p99_ms": float(np.percentile(v, 99)),
        "mean_ms": float(v.mean()),
        "n": len(v),
    }


def ping(voice: RemoteVoice, n: int = PINGS) -> list[float]:
    """Round trips of ``info`` calls in ms: what the network and the server's hop cost."""
    out = []
    conn = voice._conn
    assert conn is not None
    for _ in range(n):
        t0 = time.perf_counter()
        conn.call(voice.voice, "info", {})
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _stream(voice, settings, x, sr, start_at, block_s, barrier, results, i) -> None:
    metrics = Metrics()
    proc = BlockProcessor(voice, settings, sr, metrics)
    n = proc.block_dev
    waits = []
    for k in range(len(x) // n):
        if barrier is not None:
            barrier.wait()
        delay = start_at + k * block_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        proc.process(x[k * n : (k + 1) * n])
        waits.append((time.perf_counter() - t0) * 1e3)
    results[i] = {"proc": proc, "block_ms": waits, "compute": metrics.compute_percentiles()}


def bench_remote(
    settings: Settings,
    address: str,
    token: str,
    seconds: float,
    streams: int = 1,
    ca_file: str | None = None,
    sr: int = 48000,
) -> dict:
    settings = with_changes(settings, engine={"gate_threshold_db": -90.0})
    x = synthetic_speech(seconds, sr)
    rvc = settings.voice.voice == "rvc"
    if rvc or not settings.voice.reference:
        reference = (x[: sr * 3], sr)
    else:
        from voicegui.engine.offline import read_audio, to_mono

        data, ref_sr = read_audio(Path(settings.voice.reference))
        reference = (to_mono(data), ref_sr)
    vs = replace(settings.voice, remote_address=address, remote_ca=ca_file or "")
    voices: list[RemoteVoice] = []
    try:
        for _ in range(streams):
            voices.append(remote_voice(vs, token))
        for v in voices:
            if rvc:
                continue
            v.update(
                {
                    "diffusion_steps": settings.voice.diffusion_steps,
                    "cfg_rate": settings.voice.cfg_rate,
                    "max_prompt_time": settings.voice.max_prompt_time,
                    "style_from_prompt": settings.voice.style_from_prompt,
                    "extra_dit_left_time": settings.engine.extra_dit_left_time,
                }
            )
            v.prepare(*reference)
        pings = ping(voices[0])
        block_s = BlockProcessor(voices[0], settings, sr).block_dev / sr
        results: list = [None] * streams
        barrier = threading.Barrier(streams) if streams > 1 else None
        start_at = time.perf_counter() + 0.2
        threads = [
            threading.Thread(
                target=_stream,
                args=(v, settings, x, sr, start_at, block_s, barrier, results, i),
            )
            for i, v in enumerate(voices)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start_at
        stats = [v.stats() for v in voices]
        proc = results[0]["proc"]
        lat = proc.latency()
        blocks = sum(s["sent"] for s in stats)
        return {
            "mode": "remote",
            "address": address,
            "server": {k: voices[0].info.get(k) for k in ("server", "provider", "device")},
            "voice": settings.voice.voice,
            "streams": streams,
            "seconds": seconds,
            "block_ms": block_s * 1e3,
            "network_round_trip": _percentiles(pings),
            "block_round_trip": _percentiles(ms for v in voices for ms in v.round_trips_ms),
            "server_compute": _percentiles(ms for v in voices for ms in v.server_ms),
            # a pass's time shared by the blocks it computed together
            "server_compute_per_block": _percentiles(
                ms for v in voices for ms in v.server_block_ms
            ),
            "server_batch_sizes": sorted({b for v in voices for b in v.batch_sizes}),
            # blocks the server computed (late replies included) per second of the run
            "served_blocks_per_s": sum(len(v.server_ms) for v in voices) / elapsed,
            "engine_block": _percentiles(ms for r in results for ms in r["block_ms"]),
            "blocks": blocks,
            "late": sum(s["late"] for s in stats),
            "lost": sum(s["lost"] for s in stats),
            "voice_errors": sum(r["proc"].voice_errors for r in results),
            "latency": lat.as_dict(),
            "end_to_end_ms": lat.end_to_end * 1e3,
        }
    finally:
        for v in voices:
            v.close()
