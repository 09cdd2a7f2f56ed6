"""CPU timing of the RVC synthesizer for one real-time block, as JSON.

    python -m voicegui.voices.rvc.synth_bench MODEL.pth [--frames 281 --skip-head 250
        --return-length 30 --return-length2 30] [--onnx] [--runs 7] [--threads 2]

The block geometry defaults to upstream's real-time GUI at block 0.25 s, extra 2.5 s,
crossfade 0.05 s (the parity kit's first stream). Inputs are random features and a steady
pitch (the synthesizer's cost does not depend on their values). ``--onnx`` also times the
model exported to voicegui's ONNX layout with onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _time(fn, runs: int) -> dict:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def bench(model_path: Path, frames: int, skip_head: int, n: int, n2: int, runs: int, onnx: bool):
    from voicegui.voices.rvc.checkpoints import load_voice_model

    model, info = load_voice_model(model_path)
    c = model.config
    gen = torch.Generator().manual_seed(0)
    phone = torch.randn(1, frames, c.feature_dim, generator=gen)
    pitch = torch.full((1, frames), 60, dtype=torch.long) if c.f0 else None
    pitchf = torch.full((1, frames), 150.0) if c.f0 else None
    kw = dict(skip_head=skip_head, return_length=n, return_length2=n2)
    result = {
        "model": model_path.name,
        "version": info.version,
        "sample_rate": info.sample_rate,
        "frames": frames,
        "skip_head": skip_head,
        "return_length": n,
        "return_length2": n2,
        "block_s": n * c.upp / c.sample_rate,
        "threads": torch.get_num_threads(),
        "torch_fp32": _time(lambda: model.infer(phone, pitch, pitchf, 0, **kw), runs),
    }
    if onnx:
        from voicegui.voices.rvc.onnx_export import export_synthesizer
        from voicegui.voices.rvc.onnx_model import OnnxSynthesizer

        with tempfile.TemporaryDirectory() as tmp:
            path = export_synthesizer(model, Path(tmp) / "synth.onnx", "voicegui")
            ort = OnnxSynthesizer(path, threads=torch.get_num_threads())
            result["onnx_fp32"] = _time(lambda: ort.infer(phone, pitch, pitchf, 0, **kw), runs)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--frames", type=int, default=281)
    ap.add_argument("--skip-head", type=int, default=250)
    ap.add_argument("--return-length", type=int, default=30)
    ap.add_argument("--return-length2", type=int, default=None)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n2 = args.return_length2 or args.return_length
    out = bench(
        args.model, args.frames, args.skip_head, args.return_length, n2, args.runs, args.onnx
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
