"""Per-stage CPU timings of the RVC front ends, as JSON (the figures next to upstream's).

    python -m voicegui.voices.rvc.frontend_bench --assets DIR [--wav FILE] [--runs 5]

DIR is an RVC ``assets/`` folder (``hubert_base/``, ``rmvpe/rmvpe.pt``); FCPE uses the weights
the torchfcpe wheel ships. The input is 2 s of 16 kHz audio: ``--wav`` (any rate, resampled),
or a synthetic voiced signal. Each stage runs ``--runs`` times after one warm-up call; the
JSON gives the median and the fastest run, in seconds, and the threads torch used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from voicegui.threads import compute_threads, own_torch_threads
from voicegui.voices.rvc import resample as rs
from voicegui.voices.rvc.fcpe import load_fcpe
from voicegui.voices.rvc.hubert import load_hubert
from voicegui.voices.rvc.rmvpe import load_rmvpe, log_mel
from voicegui.voices.rvc.yin import Yin

SECONDS = 2.0


def _voiced_signal(seconds: float, sr: int = 16000) -> np.ndarray:
    """A gliding harmonic tone with a little noise: speech-like load for every stage."""
    time_s = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * time_s)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(h * phase) / h for h in range(1, 12))
    wav += 0.01 * np.random.default_rng(0).standard_normal(wav.shape)
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


def _time(fn: Callable[[], object], runs: int) -> dict:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}


def bench(assets: Path, wav16k: np.ndarray, runs: int) -> dict:
    threads = compute_threads()
    own_torch_threads(threads)
    wav = torch.from_numpy(wav16k)
    mic = torch.from_numpy(_voiced_signal(0.5, 48000))
    hubert = load_hubert(assets / "hubert_base")
    rmvpe = load_rmvpe(assets / "rmvpe" / "rmvpe.pt")
    fcpe = load_fcpe()
    yin = Yin()
    mel = log_mel(wav)
    stages = {
        "resample_to_16k": (lambda: rs.to_16k(mic, 48000), "0.5 s at 48 kHz -> 16 kHz"),
        "hubert_v2": (lambda: hubert.features(wav, "v2"), "12 layers, 768-d"),
        "hubert_v1": (lambda: hubert.features(wav, "v1"), "9 layers + final_proj, 256-d"),
        "rmvpe_mel": (lambda: log_mel(wav), "128-band log-mel"),
        "rmvpe_net": (lambda: rmvpe.model.salience(mel), "U-Net + BiGRU + Linear"),
        "rmvpe_total": (lambda: rmvpe.f0(wav16k), "mel + network + decode"),
        "fcpe": (lambda: fcpe.f0(wav16k), "mel + network + decode, real weights"),
        "yin": (lambda: yin.f0(wav16k), "numpy YIN, no weights"),
    }
    out = {}
    with torch.inference_mode():
        for name, (fn, what) in stages.items():
            out[name] = {**_time(fn, runs), "what": what}
    return {
        "audio_s": round(wav.numel() / 16000, 3),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": runs,
        "stages": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, required=True, help="RVC assets/ folder")
    parser.add_argument("--wav", type=Path, help="audio file (default: a synthetic voice)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.wav is not None:
        import soundfile as sf

        data, sr = sf.read(args.wav, dtype="float32", always_2d=True)
        x = rs.to_16k(torch.from_numpy(data.mean(axis=1)), sr).numpy()
        wav16k = x[: int(SECONDS * 16000)]
    else:
        wav16k = _voiced_signal(SECONDS)
    print(json.dumps(bench(args.assets, wav16k, max(1, args.runs)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
