"""Build a Seed-VC model folder with random weights of the real sizes, for `voicegui bench`.

The DiT, HiFT and CAMPPlus files come from the parity kit's make_checkpoints.py (the published
layout and shapes); the content encoder is XLS-R 300m's architecture cut to 12 layers, randomly
initialised here. Nothing is downloaded. Then:

    VOICEGUI_HOME=BENCH_HOME voicegui models import seedvc OUT
    VOICEGUI_HOME=BENCH_HOME voicegui bench --preset "Seed-VC (upstream settings)"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

XLSR_300M_12 = {
    "model_type": "wav2vec2",
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "conv_dim": [512] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "conv_bias": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "vocab_size": 32,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument(
        "--kit", default=str(Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "seedvc")
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(Path(args.kit) / "make_checkpoints.py"), "--out", str(out)], check=True
    )
    (out / "dit_uvit_tat_xlsr_tiny_random.pth").replace(out / "DiT_uvit_tat_xlsr_ema.pth")
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config(**XLSR_300M_12))
    (out / "config.json").write_text(json.dumps(XLSR_300M_12), encoding="utf-8")
    torch.save(
        {f"wav2vec2.{k}": v for k, v in model.state_dict().items()}, out / "pytorch_model.bin"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
