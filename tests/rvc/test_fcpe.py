"""FCPE (the torchfcpe wheel's real weights) against the RVC kit's fcpe_f0 on real speech.

The kit has FCPE's output only (no mel or salience to compare stage by stage), so the
salience's rounding is computed end to end instead of estimated from fan-ins: the same mel and
network run in float64 give the exact salience, and our float32 run's deviation from it is
what one float32 evaluation's rounding does. The kit's float32 run (another CPU, other
summation orders) has rounding of the same statistics; the maximum over ~7e4 salience elements
is stable to a factor < 2 between such runs, so each side is allowed twice ours:
dw = 4 max|s32 - s64| (about 2e-5; the fan-in rule of front_rounding.py would give ~7e-4 here,
because FCPE's unvoiced bins carry logits near -45). The decode's weighted mean turns dw into
cents and Hz per frame (front_rounding.local_mean_cents_tolerance). Frames whose peak lies
within dw of the voicing threshold may switch voicing, voiced frames whose top two bins are
within 2 dw may pick the other bin: those are skipped, no other.
"""

from __future__ import annotations

import copy
import importlib.util
import sys

import numpy as np
import pytest
import torch

from tests.rvc.front_kit import HOP_16K, block_numbers, bundled_fcpe, t
from tests.rvc.front_rounding import (
    U,
    hz_tolerance_from_cents,
    local_mean_cents_tolerance,
)
from tests.seedvc.rounding import assert_within
from voicegui.voices.rvc import fcpe as fcpe_module
from voicegui.voices.seedvc.checkpoints import CheckpointError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fcpe() -> fcpe_module.Fcpe:
    return bundled_fcpe()


@pytest.fixture(scope="module")
def exact(fcpe) -> fcpe_module.FcpeModel:
    return copy.deepcopy(fcpe.model).double()


def f0_bounds(fcpe, exact, wav: np.ndarray):
    """(our f0, per-frame Hz tolerance, frames that may switch voicing or bin)."""
    x = t(wav)[None]
    with torch.inference_mode():
        sal = fcpe.model.salience(fcpe.mel(x))[0].double().numpy()
        reference = exact.salience(fcpe.mel(x.double()))[0].numpy()
    dw = 4 * float(np.max(np.abs(sal - reference)))
    order = np.sort(sal, axis=1)
    peak, arg = order[:, -1], sal.argmax(1)
    voiced = peak > fcpe.threshold
    # voicing is undecided within dw of the threshold; the bin, on voiced frames, where the
    # top two are within 2 dw (an unvoiced frame's bin does not matter: it decodes to 0)
    unsure = (np.abs(peak - fcpe.threshold) <= dw) | (
        voiced & (order[:, -1] - order[:, -2] <= 2 * dw)
    )
    bins = sal.shape[1]
    idx = np.clip(arg[:, None] + np.arange(-4, 5)[None], 0, bins - 1)
    table = fcpe.model.cent_table.double().numpy()
    w, cents = np.take_along_axis(sal, idx, 1), table[idx]
    mean = (w * cents).sum(1) / w.sum(1)
    # the float32 decode on each side: the 9 products and their sum (9u of sum c_i w_i, i.e.
    # of c sum w), the 9-term weight sum (8u) and the division (u): 18u |c| relative
    dc = np.where(voiced, local_mean_cents_tolerance(w, cents, mean, dw) + 18 * U * mean, 0.0)
    f0 = fcpe.f0(wav)
    return f0, hz_tolerance_from_cents(f0, dc, mean), unsure


def compare(fcpe, exact, wav, want, name):
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    f0, hz, unsure = f0_bounds(fcpe, exact, wav)
    assert f0.shape == want.shape and f0.dtype == np.float32
    sure = ~unsure
    assert ((f0 > 0) == (want > 0))[sure].all(), f"{name}: voicing differs on a decisive frame"
    assert sure.sum() >= 0.9 * sure.size, f"{name}: {int(unsure.sum())} undecided frames"
    assert_within(f0[sure], want[sure], hz[sure], name)


def test_speech(fcpe, exact, rvc_inputs, rvc_expected):
    want = rvc_expected["fcpe_f0"]
    out = fcpe.f0_tensor(t(rvc_inputs["src_wav_16k"])[None])
    assert out.shape == want.shape  # (B, F, 1) as torchfcpe returns it
    assert (want == 0).any() and (want > 0).any()  # the kit's speech has both
    compare(fcpe, exact, rvc_inputs["src_wav_16k"], want, "fcpe_f0")


def test_last_stream_block(fcpe, exact, rvc_expected):
    """The real-time path runs FCPE on the ring's last block + 800 samples."""
    blocks = block_numbers(rvc_expected, "s2", "f0_raw")
    want = rvc_expected[f"s2_b{blocks[-1]}_f0_raw"]
    n = (want.shape[0] - 1) * HOP_16K
    tail = rvc_expected["s2_last_input_wav_res"][-n:]
    compare(fcpe, exact, tail, want, f"s2_b{blocks[-1]}_f0_raw")


@pytest.mark.parametrize("n", [160, 431, 1000, 16001])
def test_frames_for_any_length(fcpe, n):
    wav = np.sin(2 * np.pi * 220 * np.arange(n) / 16000).astype(np.float32) * 0.3
    assert fcpe.f0(wav).shape == (n // HOP_16K + 1,)


def test_finds_a_sung_tone(fcpe):
    """Real weights: a harmonic 220 Hz tone is found within a few cents."""
    time = np.arange(16000) / 16000
    wav = sum(0.3 / h * np.sin(2 * np.pi * 220 * h * time) for h in range(1, 6)).astype(np.float32)
    f0 = fcpe.f0(wav)[10:-10]
    assert (f0 > 0).all() and np.abs(1200 * np.log2(f0 / 220)).max() < 20


def test_weights_come_from_the_wheel_without_running_it(fcpe):
    path = fcpe_module.bundled_weights_path()
    assert path.name == "fcpe_c_v001.pt" and path.is_file()
    assert "torchfcpe" not in sys.modules  # the package (torchaudio imports) never ran
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    own = fcpe.model.state_dict()
    folded = {k for k in state if k.startswith("output_proj.weight_")}
    assert set(own) == (set(state) - folded) | {"output_proj.weight"}


def test_missing_package_names_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torchfcpe" else real(name, *a),
    )
    with pytest.raises(CheckpointError, match="pip install --no-deps torchfcpe"):
        fcpe_module.bundled_weights_path()


def test_damaged_and_other_models(tmp_path):
    src = fcpe_module.bundled_weights_path()
    data = src.read_bytes()
    (tmp_path / "fcpe.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="FCPE.*truncated or corrupt"):
        fcpe_module.load_fcpe(tmp_path / "fcpe.pt")
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["config_dict"]["model"]["conv_only"] = False
    torch.save(ckpt, tmp_path / "attention.pt")
    with pytest.raises(CheckpointError, match="conv-only"):
        fcpe_module.load_fcpe(tmp_path / "attention.pt")
