"""The Seed-VC parity kit: inputs, expected outputs and random-weight checkpoints.

The kit folder comes from VOICEGUI_SEEDVC_FIXTURES (default: ../shared/fixtures/seedvc next to
the repository), so the same tests run unchanged against any kit made the same way.
Checkpoints are written once by the kit's own make_checkpoints.py and cached under test-output/.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.parity_kits import kit_arrays, kit_folder, present_kit

REPO = Path(__file__).resolve().parents[2]
KIT_VARIABLE = "VOICEGUI_SEEDVC_FIXTURES"
DIT = "dit_uvit_tat_xlsr_tiny_random.pth"
CHECKPOINT_FILES = (DIT, "hift.pt", "campplus_cn_common.bin")

# A small streaming geometry for the Seed-VC voice through the engine (fast on a CPU)
STREAM = {
    "block_time": 0.1,
    "crossfade_time": 0.02,
    "extra_left_time": 0.5,
    "extra_dit_left_time": 0.2,
    "extra_right_time": 0.02,
    "gate_threshold_db": -90.0,
}

# A tiny random XLS-R with the real model's 1024-d output, so it fits the length regulator.
TINY_XLSR = {
    "hidden_size": 1024,
    "num_hidden_layers": 2,
    "num_attention_heads": 16,
    "intermediate_size": 256,
    "conv_dim": [64] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 16,
    "conv_bias": True,
    "model_type": "wav2vec2",
    "vocab_size": 32,
}


@dataclass(frozen=True)
class KitGeometry:
    """Upstream's real-time GUI settings as the kit's README states them, and the lengths its
    GUI derives from them (the same arithmetic as upstream's start_vc / custom_infer)."""

    rate: int
    block_time: float
    crossfade_time: float
    extra_ce: float
    extra_dit: float
    extra_right: float
    steps: int
    cfg: float
    max_prompt: float

    @property
    def zc(self) -> int:  # samples per content frame (50 frames/s)
        return self.rate // 50

    def _frames(self, seconds: float) -> int:
        return int(round(seconds * self.rate / self.zc)) * self.zc

    @property
    def block_frame(self) -> int:
        return self._frames(self.block_time)

    @property
    def sola_buffer(self) -> int:
        return min(self._frames(self.crossfade_time), 4 * self.zc)

    @property
    def sola_search(self) -> int:
        return self.zc

    @property
    def extra(self) -> int:
        return self._frames(self.extra_ce)

    @property
    def right(self) -> int:
        return self._frames(self.extra_right)

    @property
    def return_length(self) -> int:  # in content frames
        return (self.block_frame + self.sola_buffer + self.sola_search) // self.zc

    @property
    def out_samples(self) -> int:
        return self.return_length * self.zc

    @property
    def window(self) -> int:
        return self.extra + self.sola_buffer + self.sola_search + self.block_frame + self.right

    @property
    def prompt_samples(self) -> int:  # reference[: int(rate * max_prompt)]
        return int(self.rate * self.max_prompt)

    def plan(self):
        from voicegui.voices.seedvc.model import plan_block

        return plan_block(self.extra_ce, self.extra_dit, self.out_samples, self.right, self.rate)


README_SETTINGS = {
    "block_time": r"block ([0-9.]+) s",
    "crossfade_time": r"crossfade ([0-9.]+)",
    "extra_ce": r"extra_ce ([0-9.]+)",
    "extra_dit": r"extra_dit ([0-9.]+)",
    "extra_right": r"extra_right ([0-9.]+)",
    "steps": r"steps ([0-9]+)",
    "cfg": r"cfg ([0-9.]+)",
    "max_prompt": r"max_prompt ([0-9.]+)",
    "rate": r"model rate of ([0-9]+) Hz",
}


def read_kit_geometry(kit: Path) -> KitGeometry:
    """The settings line of the README ("GUI settings. block 0.18 s, crossfade 0.04, ...")."""
    text = (kit / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if "GUI settings" in ln)
    values = {}
    for name, pattern in README_SETTINGS.items():
        m = re.search(pattern, line)
        assert m, f"kit README: no {name} in {line!r}"
        values[name] = m.group(1)
    kinds = {"rate": int, "steps": int}
    return KitGeometry(**{k: kinds.get(k, float)(v) for k, v in values.items()})


def kit_dir() -> Path:
    return kit_folder("seedvc", KIT_VARIABLE)


@pytest.fixture(scope="session")
def seedvc_kit() -> Path:
    return present_kit(kit_dir(), "Seed-VC", KIT_VARIABLE)


@pytest.fixture(scope="session")
def kit_inputs(seedvc_kit: Path) -> dict[str, np.ndarray]:
    return kit_arrays(seedvc_kit / "inputs.npz")


@pytest.fixture(scope="session")
def kit_expected(seedvc_kit: Path) -> dict[str, np.ndarray]:
    return kit_arrays(seedvc_kit / "expected.npz")


@pytest.fixture(scope="session")
def kit_geometry(seedvc_kit: Path) -> KitGeometry:
    return read_kit_geometry(seedvc_kit)


def standalone_prompt_frames(kit_expected) -> int:
    """Prompt frames of the standalone CFM runs (the full reference's mel is the prompt)."""
    return kit_expected["ref_mel"].shape[-1]


def _kit_fingerprint(kit: Path) -> str:
    h = hashlib.sha256()
    for name in ("make_checkpoints.py", "keys_dit.json", "keys_hift.json", "keys_campplus.json"):
        h.update((kit / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def kit_checkpoints(seedvc_kit: Path) -> Path:
    """Folder with the three checkpoints in the upstream on-disk layout (about 225 MB)."""
    out = REPO / "test-output" / "seedvc-checkpoints" / _kit_fingerprint(seedvc_kit)
    if not all((out / f).is_file() for f in CHECKPOINT_FILES):
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(seedvc_kit / "make_checkpoints.py"), "--out", str(out)],
            check=True,
            capture_output=True,
        )
    return out


# ---- tolerances of the network stages: max|diff| <= rtol * max|expected| (the kit's rule)
# Both sides compute in float32 with the same operations; what differs between CPUs, and between
# our code and the kit's, is the order of the sums inside matmuls and convolutions. A dot
# product of n terms whose partial sums wander like a random walk (s_k ~ sqrt(k) m, each
# rounded by a uniform error of std u |s_k| / sqrt(3)) errs by sqrt(sum_k k / 3) u m
# = n u m / sqrt(6), against a value ~ sqrt(n) m: 0.41 sqrt(n) u relative. Layers add their
# errors (normalisations rescale, activations are 1-Lipschitz), so a stage whose layers have
# fan-ins n_l expects sum_l 0.41 sqrt(n_l) u; the largest of its 1e4-1e5 elements (~4.5 sigma)
# measured against max|expected| (~4 rms) stays near that figure, and the rtol is twice it.
# (The worst-case bound, n u per sum, would be ~sqrt(n) = 30x looser and would hide real
# mistakes; tests/seedvc/test_negative_controls.py shows these catch them.)
U = 2.0**-24


def rounding_rtol(sum_sqrt_fan_in: float, averaged_over: int = 1) -> float:
    """2 x sum_l 0.41 sqrt(n_l) u, divided by sqrt(k) when the output averages k independent
    frames' errors (statistics pooling)."""
    return 2 * 0.41 * sum_sqrt_fan_in * U / averaged_over**0.5


# Length regulator: Linear 1024 -> 384, 4 x Conv1d(384, k3), 1x1 conv:
# sqrt(1024) + 4 sqrt(1152) + sqrt(384) = 187 -> 9.1e-6.
RTOL_LR = rounding_rtol(187)
# DiT, one velocity: its Linear layers (fan-ins 80..1536, 81 of them) sum to ~1770, attention
# adds 9 layers x (sqrt(head dim 64) + sqrt(T + 2 <= 430 keys)) ~ 260: 2030 -> 9.9e-5. An Euler
# solve x += dt v averages the steps' velocity errors (dt sums to 1), so the CFM mel keeps it.
RTOL_DIT = rounding_rtol(2030)
# HiFT: 61 convolutions (conv_pre, 2 upsamplings of fan-in in*k/stride, 2 x 3 resblocks of
# fan-ins 256..2816, source convs, conv_post, the f0 predictor): sum sqrt 2070 -> 1.0e-4.
RTOL_HIFT = rounding_rtol(2070)
# HiFT's f0 predictor alone: Conv1d(80, k3), 4 x Conv1d(512, k3), Linear 512:
# sqrt(240) + 4 sqrt(1536) + sqrt(512) = 195 -> 9.5e-6.
RTOL_F0 = rounding_rtol(195)
# One real-time block: length regulator + DiT/CFM + HiFT, their errors add.
RTOL_BLOCK = RTOL_LR + RTOL_DIT + RTOL_HIFT
# The voiced vocoder path: both sides sum the phase increments into float32 cycle counts of up to
# f0_max * 9 * N / 22050 (~3e3 for the kit's glide); one ulp of such a count (2.4e-4 cycles,
# when an increment or a partial sum rounds the other way) moves a harmonic's phase by
# 2 pi * 2.4e-4 = 1.5e-3 rad, its 0.1-amplitude sine by 1.5e-4, the 9-harmonic mix by
# <= 9 * |w| (~0.3) * 1.5e-4 = 4e-4 and the waveform, after the network's gain of order 1, by
# ~1e-3: an absolute tolerance (test_negative_controls: a float32 running sum misses it by far).
ATOL_VOICED = 1e-3


def fbank_frames(samples_22k: int) -> int:
    """Kaldi fbank frames of a 22.05 kHz clip after the 16 kHz resampler."""
    n16 = -(-samples_22k * 320 // 441)
    return (n16 - 400) // 160 + 1


def rtol_style(fbank_frames: int) -> float:
    """CAMPPlus: 225 layers, sum sqrt(fan-in) = 3580, pooled (mean and std) over the
    T/2 frames after the stride-2 TDNN: 3580 / sqrt(T/2) (1.4e-5 for 3 s)."""
    return rounding_rtol(3580, averaged_over=max(1, fbank_frames // 2))


def assert_rel(actual, expected, rtol: float, name: str = "") -> None:
    """max|diff| <= rtol * max|expected|, the kit's acceptance rule."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    err = np.max(np.abs(actual - expected))
    scale = np.max(np.abs(expected))
    assert err <= rtol * scale, f"{name}: max|diff| {err:.3g} > {rtol} * {scale:.3g}"


def assert_abs(actual, expected, atol: float, name: str = "") -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    err = np.max(np.abs(actual - expected))
    assert err <= atol, f"{name}: max|diff| {err:.3g} > {atol}"


def write_tiny_xlsr(folder: Path) -> Path:
    """config.json + pytorch_model.bin of TINY_XLSR (seeded) in the published layout."""
    import json

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    (folder / "config.json").write_text(json.dumps(TINY_XLSR), encoding="utf-8")
    torch.save(
        Wav2Vec2ForPreTraining(Wav2Vec2Config(**TINY_XLSR)).state_dict(),
        folder / "pytorch_model.bin",
    )
    return folder


def write_published_layout(checkpoints: Path, folder: Path, xlsr_subfolder: str = "") -> Path:
    """What a user copies from another machine: Seed-VC's files under their published names."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoints / DIT, folder / "DiT_uvit_tat_xlsr_ema.pth")
    shutil.copyfile(checkpoints / "hift.pt", folder / "hift.pt")
    shutil.copyfile(checkpoints / "campplus_cn_common.bin", folder / "campplus_cn_common.bin")
    write_tiny_xlsr(folder / xlsr_subfolder if xlsr_subfolder else folder)
    return folder


@pytest.fixture(scope="session")
def tiny_xlsr(tmp_path_factory) -> Path:
    return write_tiny_xlsr(tmp_path_factory.mktemp("xlsr-tiny"))
