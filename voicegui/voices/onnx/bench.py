"""Side-by-side compute of the Seed-VC voice on torch and onnxruntime (fp32, int8, fp16).

Every backend runs the same synthetic speech through its own BlockProcessor (the real framing,
context and SOLA path at 22.05 kHz), block by block and interleaved, so load on a shared
machine hits all of them alike. Per backend and setting: per-block compute (median, p90), RTF
(median compute / block), per-stage medians, and the output's SNR against the torch fp32 stream
at the same setting; per setting also the log-mel distance from the torch stream at the first
(reference) setting, a numerical stand-in for the quality cost of a cheaper setting. (With the
parity kit's random weights that distance sits at its floor: two noise seeds at one setting
differ by as much, ~4 dB; it means something only with trained weights.)

    python -m voicegui.voices.onnx.bench --dit D.pth --hift hift.pt --campplus c.bin \\
        [--xlsr DIR | --random-xlsr] [--backends torch-fp32,torch,onnx-int8] [--json out.json]

Call ``compare_backends`` from code (``voicegui bench --backend onnx`` can delegate to it).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SR = 22050


@dataclass(frozen=True)
class BenchSetting:
    name: str
    block: float  # s
    crossfade: float
    left: float  # content-encoder left context
    dit_left: float
    right: float
    steps: int
    cfg: float
    prompt: float  # max prompt seconds

    def settings(self):
        from voicegui.settings import Settings, with_changes

        return with_changes(
            Settings(),
            engine={
                "block_time": self.block,
                "crossfade_time": self.crossfade,
                "extra_left_time": self.left,
                "extra_dit_left_time": self.dit_left,
                "extra_right_time": self.right,
                "gate_threshold_db": -90.0,  # every block costs what speech costs
            },
            voice={
                "voice": "seedvc",
                "diffusion_steps": self.steps,
                "cfg_rate": self.cfg,
                "max_prompt_time": self.prompt,
            },
        )


# Seed-VC's real-time GUI defaults (its README).
UPSTREAM = BenchSetting("upstream", 0.18, 0.04, 2.5, 0.5, 0.02, 10, 0.7, 3.0)
# A setting that keeps up on a 2-core CPU with the int8 graphs: longer block (fixed costs
# amortised), 0.5 s content context, 4 steps without CFG, 1 s prompt.
LOW_COMPUTE = BenchSetting("low-compute", 0.36, 0.04, 0.5, 0.25, 0.02, 4, 0.0, 1.0)

# The content encoder of Seed-VC's real-time model: facebook/wav2vec2-xls-r-300m, first 12
# layers. Its weights are not needed for timing: random weights with this exact shape.
XLSR_300M_12L = {
    "model_type": "wav2vec2",
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "conv_dim": [512] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "layer_norm_eps": 1e-5,
    "vocab_size": 32,
}


def random_xlsr(folder: Path | None = None) -> Path:
    """A random-weight XLS-R-300m (12 layers) in the published file layout, made locally once."""
    import torch

    if folder is None:
        from voicegui import paths

        folder = paths.cache_dir() / "bench" / "xlsr-300m-12l-random"
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return folder
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config(**XLSR_300M_12L))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    (folder / "config.json").write_text(json.dumps(XLSR_300M_12L, indent=1), encoding="utf-8")
    save_file(state, str(folder / "model.safetensors"))
    return folder


class _Timed:
    """Delegates to a voice and times each convert() call."""

    def __init__(self, voice) -> None:
        self._voice = voice
        self.ms: list[float] = []

    def __getattr__(self, name):
        return getattr(self._voice, name)

    def convert(self, window, info):
        t0 = time.perf_counter()
        out = self._voice.convert(window, info)
        self.ms.append((time.perf_counter() - t0) * 1e3)
        return out


def backend_settings(name: str, device: str = "cpu"):
    """'torch[-<precision>]' or 'onnx[-<precision>]' -> the VoiceSettings the app would hold
    ('torch' alone: precision auto, what the app runs by default)."""
    from voicegui.settings import VoiceSettings

    backend, _, precision = name.partition("-")
    if backend not in ("torch", "onnx"):
        raise ValueError(f"unknown backend {name!r}: torch[-precision] or onnx[-precision]")
    return VoiceSettings(
        voice="seedvc", backend=backend, precision=precision or "auto", device=device
    )


def load_backend(
    name: str,
    files: dict,
    device: str = "cpu",
    cache_dir: Path | None = None,
    threads: int | None = None,
    progress=None,
    spin: bool = False,
):
    """A Seed-VC voice built exactly as the app builds it (build_seedvc_voice), VAD off so
    every block is measured (as `voicegui bench` does)."""
    from voicegui.voices.seedvc.voice import build_seedvc_voice

    voice = build_seedvc_voice(
        files,
        backend_settings(name, device),
        progress,
        threads=threads,
        cache_dir=cache_dir,
        spin=spin,
    )
    voice.speech_detector = None
    return voice


def _log_mel(x: np.ndarray):
    import torch

    from voicegui.voices.seedvc.features import mel_spectrogram

    return mel_spectrogram(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))[0].numpy()


def _snr(a: np.ndarray, ref: np.ndarray) -> float:
    noise = float(np.sum((a.astype(np.float64) - ref) ** 2))
    return (
        float("inf")
        if noise == 0
        else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)
    )


def compare_backends(
    files: dict,
    settings: tuple[BenchSetting, ...] = (UPSTREAM, LOW_COMPUTE),
    backends: tuple[str, ...] = ("torch-fp32", "torch", "onnx-int8"),
    seconds: float = 4.0,
    skip_blocks: int = 2,
    device: str = "cpu",
    cache_dir: Path | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = print,
    spin: bool = False,
) -> dict:
    """Per setting and backend: per-block compute, RTF, stages, and accuracy (see module doc).

    ``files``: dit, hift, campplus, content_dir (as SeedVCModel.load takes them). The first
    backend is the accuracy reference (torch fp32 by default).
    """
    import platform

    from voicegui.bench import synthetic_speech
    from voicegui.engine.processor import BlockProcessor

    say = log or (lambda _m: None)
    voices, models = {}, {}
    for name in backends:
        t0 = time.perf_counter()
        voices[name] = load_backend(
            name,
            files,
            device,
            cache_dir,
            threads,
            progress=lambda s, i, n: say(f"  exporting {s} ({i}/{n})"),
            spin=spin,
        )
        models[name] = voices[name].model
        say(f"{name}: loaded in {time.perf_counter() - t0:.1f} s on {models[name].provider}")
    x = synthetic_speech(seconds, SR, seed=7)
    reference = synthetic_speech(4.0, SR, seed=11)
    result: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": threads},
        "providers": {n: m.provider for n, m in models.items()},
        "settings": {},
    }
    first_stream = None
    for st in settings:
        s = st.settings()
        procs, timed, streams = {}, {}, {}
        for name, model in models.items():
            model.timer.samples.clear()
            voice = _Timed(voices[name])
            voice.prepare(reference, SR)
            voice.reset()
            timed[name] = voice
            procs[name] = BlockProcessor(voice, s, SR)
            streams[name] = []
        b = next(iter(procs.values())).block_dev
        nblocks = len(x) // b
        for i in range(nblocks):  # interleaved: the machine's load hits every backend alike
            for name, proc in procs.items():
                streams[name].append(proc.process(x[i * b : (i + 1) * b]))
        out = {}
        ref_name = backends[0]
        ref_stream = np.concatenate(streams[ref_name])
        for name in backends:
            ms = np.asarray(timed[name].ms[skip_blocks:])
            stream = np.concatenate(streams[name])
            stages = {k: round(v["p50_ms"], 1) for k, v in models[name].timer.summary().items()}
            out[name] = {
                "blocks": len(ms),
                "compute_p50_ms": round(float(np.median(ms)), 1),
                "compute_p90_ms": round(float(np.percentile(ms, 90)), 1),
                "rtf": round(float(np.median(ms)) / (st.block * 1e3), 3),
                "stages_p50_ms": stages,
                "snr_vs_ref_db": None if name == ref_name else round(_snr(stream, ref_stream), 1),
            }
            say(
                f"{st.name:12s} {name:10s} {out[name]['compute_p50_ms']:8.1f} ms/block "
                f"RTF {out[name]['rtf']:.2f}  snr {out[name]['snr_vs_ref_db']}  {stages}"
            )
        latency = procs[ref_name].latency()
        lat = latency.algorithmic if hasattr(latency, "algorithmic") else None
        out["latency_algorithmic_s"] = lat
        # setting cost: log-mel distance of each stream from the reference backend's stream at
        # the first setting, aligned by the difference in algorithmic latency
        if first_stream is None:
            first_stream = (ref_stream, lat)
        else:
            base, base_lat = first_stream
            shift = round(((lat or 0) - (base_lat or 0)) * SR)
            for name in backends:
                cur = np.concatenate(streams[name])[max(0, shift) :]
                n = min(len(cur), len(base)) - SR // 2
                ma, mb = _log_mel(cur[SR // 2 : n]), _log_mel(base[SR // 2 : n])
                out[name]["logmel_dist_vs_first_setting_db"] = round(
                    float(np.sqrt(np.mean((ma - mb) ** 2)) * 20 / np.log(10)), 2
                )
        result["settings"][st.name] = {"setting": asdict(st), **out}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dit", required=True, type=Path)
    p.add_argument("--hift", required=True, type=Path)
    p.add_argument("--campplus", required=True, type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--xlsr", type=Path, help="content encoder folder (config.json + weights)")
    g.add_argument("--random-xlsr", action="store_true", help="random XLS-R-300m, 12 layers")
    p.add_argument(
        "--backends",
        default="torch-fp32,torch,onnx-int8",
        help="torch[-fp32|bf16|int8|fp16], onnx[-fp32|int8|fp16]; torch = precision auto; "
        "the first is the accuracy reference",
    )
    p.add_argument("--settings", default="upstream,low-compute")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    known = {s.name: s for s in (UPSTREAM, LOW_COMPUTE)}
    files = {
        "dit": a.dit,
        "hift": a.hift,
        "campplus": a.campplus,
        "content_dir": random_xlsr() if a.random_xlsr else a.xlsr,
    }
    res = compare_backends(
        files,
        tuple(known[n] for n in a.settings.split(",")),
        tuple(a.backends.split(",")),
        seconds=a.seconds,
        device=a.device,
        cache_dir=a.cache_dir,
        threads=a.threads,
    )
    text = json.dumps(res, indent=1)
    if a.json:
        a.json.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
