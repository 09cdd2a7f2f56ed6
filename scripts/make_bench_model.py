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

    from voicegui.voices.onnx.bench import XLSR_300M_12L  # the published config, 12 layers

    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config(**XLSR_300M_12L))
    (out / "config.json").write_text(json.dumps(XLSR_300M_12L), encoding="utf-8")
    torch.save(
        {f"wav2vec2.{k}": v for k, v in model.state_dict().items()}, out / "pytorch_model.bin"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
