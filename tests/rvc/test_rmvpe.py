"""RMVPE against the RVC kit, stage by stage (log-mel, salience, decode) and from the audio.

Tolerances: tests/rvc/front_rounding.py. The salience's bound is the network's rounding rtol
(sum over its 131 layers of 0.41 sqrt(fan-in) u, doubled) times max|logit| times the sigmoid's
slope 1/4; an f0 frame may move by what that salience bound does to the 9-bin weighted mean,
and a frame whose top two bins are closer than twice the bound may pick the other bin (the
README's "argmax is fragile" warning): such frames are reported and skipped, no other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.rvc.front_kit import HOP_16K, kit_rmvpe, t
from tests.rvc.front_rounding import (
    U,
    fan_in_sum,
    frames_of,
    hz_tolerance_from_cents,
    local_mean_cents_tolerance,
    log_mel_tolerance,
    rounding_rtol,
    salience_tolerance,
)
from tests.seedvc.rounding import assert_within
from voicegui.voices.rvc import rmvpe as R
from voicegui.voices.seedvc.checkpoints import CheckpointError

pytestmark = pytest.mark.slow


DECODE_WEIGHT_SUM = 8  # gamma_8: the float32 sum of 9 saliences, relative


@pytest.fixture(scope="module")
def rmvpe(rvc_assets) -> R.Rmvpe:
    return kit_rmvpe(rvc_assets)


def mel_tolerance(wav: np.ndarray) -> np.ndarray:
    """Per element, for the centred (reflect-padded by n_fft/2) periodic-Hann log-mel."""
    frames = frames_of(wav, R.N_FFT, R.HOP, R.N_FFT // 2, R.N_FFT // 2)
    window = torch.hann_window(R.N_FFT, dtype=torch.float64).numpy()
    basis = R.mel_filterbank(R.SAMPLE_RATE, R.N_FFT, R.N_MELS, R.FMIN, R.FMAX, htk=True)
    return log_mel_tolerance(frames, window, basis, eps=0.0, clamp=R.CLAMP)[None]


def network_rtol(model: R.RmvpeModel) -> float:
    return rounding_rtol(fan_in_sum(model))


def local_window(salience: np.ndarray, centre: np.ndarray):
    sal = np.pad(salience.astype(np.float64), ((0, 0), (R.LOCAL, R.LOCAL)))
    idx = centre[:, None] + R.LOCAL + np.arange(-R.LOCAL, R.LOCAL + 1)[None]
    return np.take_along_axis(sal, idx, 1), R._CENTS[idx]


def f0_tolerance(expected_salience: np.ndarray, expected_f0: np.ndarray, dw: float):
    """Per frame Hz bound and the frames whose argmax may legitimately flip."""
    order = np.sort(expected_salience, axis=1)
    may_flip = order[:, -1] - order[:, -2] <= 2 * dw
    centre = expected_salience.argmax(1)
    w, cents = local_window(expected_salience, centre)
    mean = np.sum(w * cents, 1) / np.sum(w, 1)
    dc = local_mean_cents_tolerance(w, cents, mean, dw) + DECODE_WEIGHT_SUM * U * mean
    hz = hz_tolerance_from_cents(expected_f0, dc)
    return hz, may_flip


def test_structure_matches_the_key_listing(rvc_kit):
    listing = json.loads((rvc_kit / "keys_rmvpe.json").read_text())["entries"]
    on_disk = {k.removeprefix("rmvpe."): tuple(v["shape"]) for k, v in listing.items()}
    assert {k: tuple(v.shape) for k, v in R.RmvpeModel().state_dict().items()} == on_disk


def test_log_mel(rvc_inputs, rvc_expected):
    wav = rvc_inputs["src_wav_16k"]
    mel = R.log_mel(t(wav))
    assert mel.shape[-1] == R.mel_frames(wav.shape[0])
    assert_within(mel.numpy(), rvc_expected["rmvpe_mel"], mel_tolerance(wav), "rmvpe_mel")


def test_salience_from_the_kits_mel(rmvpe, rvc_expected):
    with torch.inference_mode():
        logits = rmvpe.model.logits(t(rvc_expected["rmvpe_mel"]))
    tol = salience_tolerance(network_rtol(rmvpe.model), logits.numpy())
    assert_within(
        torch.sigmoid(logits)[0].numpy(), rvc_expected["rmvpe_hidden"], tol, "rmvpe_hidden"
    )


def test_decode_from_the_kits_salience(rvc_expected):
    """numpy like upstream: the products and the weighted sum in float64, but the weight sum
    of the 9 float32 saliences stays float32 (8u relative), which moves the mean by 8u |c|."""
    sal = rvc_expected["rmvpe_hidden"]
    f0 = R.decode(sal, R.THRESHOLD)
    assert f0.dtype == np.float64
    w, cents = local_window(sal, sal.argmax(1))
    mean = np.sum(w * cents, 1) / np.sum(w, 1)
    tol = hz_tolerance_from_cents(rvc_expected["rmvpe_f0"], DECODE_WEIGHT_SUM * U * mean)
    assert_within(f0, rvc_expected["rmvpe_f0"], tol, "rmvpe_f0 (kit salience)")


def test_decode_threshold_and_padding():
    sal = np.full((3, R.BINS), 0.01, dtype=np.float32)
    sal[1, 0] = 0.9  # at the table's lower edge: the window reaches into the zero padding
    sal[2, 200] = 0.03  # exactly the threshold: unvoiced
    f0 = R.decode(sal, R.THRESHOLD)
    assert f0[0] == 0 and f0[2] == 0
    w = np.array([0.9] + [0.01] * 4)  # bins 0..4; the 4 bins below are padding (weight 0)
    cents = R.FIRST_BIN_CENTS + R.CENTS_PER_BIN * np.arange(5)
    assert f0[1] == pytest.approx(10 * 2 ** ((w @ cents / w.sum()) / 1200), rel=1e-6)


def test_f0_from_the_audio(rmvpe, rvc_inputs, rvc_expected):
    """Mel, network and decode of our own. Our mel differs from the kit's by at most
    test_log_mel's bound; what that difference does to the salience is computed here (the
    network run on both mels), on top of the network's own rounding bound (triangle
    inequality: |N(ours) - kit| <= |N(ours) - N(kit mel)| + |N(kit mel) - kit|)."""
    wav = rvc_inputs["src_wav_16k"]
    mel = R.log_mel(t(wav))
    with torch.inference_mode():
        logits = rmvpe.model.logits(mel)[0].numpy()
        from_kit_mel = rmvpe.model.salience(t(rvc_expected["rmvpe_mel"]))[0].numpy()
    sal = 1 / (1 + np.exp(-logits.astype(np.float64)))
    mel_effect = float(np.max(np.abs(sal - from_kit_mel)))
    dw = salience_tolerance(network_rtol(rmvpe.model), logits) + mel_effect
    want_sal = rvc_expected["rmvpe_hidden"]
    assert_within(sal, want_sal, dw, "rmvpe_hidden (from the audio)")
    hz, may_flip = f0_tolerance(want_sal, rvc_expected["rmvpe_f0"], dw)
    f0 = rmvpe.f0(wav)
    flipped = logits.argmax(1) != want_sal.argmax(1)
    assert not (flipped & ~may_flip).any(), "argmax moved where the salience was decisive"
    keep = ~flipped
    assert_within(f0[keep], rvc_expected["rmvpe_f0"][keep], hz[keep], "rmvpe_f0")


def test_f0_is_mel_network_decode(rmvpe, rvc_inputs):
    wav = rvc_inputs["src_wav_16k"]
    sal = rmvpe.model.salience(R.log_mel(t(wav)))[0].numpy()
    assert np.array_equal(rmvpe.f0(wav), R.decode(sal, R.THRESHOLD))


def test_last_stream_block_f0(rmvpe, rvc_expected):
    """The real-time path runs RMVPE on the ring's last N samples, N + 160 a multiple of 5120.
    No kit mel or salience for the block: the salience bound is the network's, the mel's
    effect is that of one float32 mel computation on each side (ours against the float64 mel,
    computed; the kit's alike, counted the same)."""
    blocks = sorted(k for k in rvc_expected if k.startswith("s1_b") and k.endswith("_f0_raw"))
    want = rvc_expected[blocks[-1]]
    n = (want.shape[0] - 1) * HOP_16K
    assert (n + HOP_16K) % 5120 == 0
    tail = rvc_expected["s1_last_input_wav_res"][-n:]
    with torch.inference_mode():
        logits = rmvpe.model.logits(R.log_mel(t(tail)))[0].numpy()
        exact_mel = R.log_mel(t(tail).double()).float()
        from_exact = rmvpe.model.salience(exact_mel)[0].numpy()
    sal = 1 / (1 + np.exp(-logits.astype(np.float64)))
    dw = salience_tolerance(network_rtol(rmvpe.model), logits)
    dw += 2 * float(np.max(np.abs(sal - from_exact)))
    hz, may_flip = f0_tolerance(sal.astype(np.float32), want, dw)
    f0 = rmvpe.f0(tail)
    assert f0.shape == want.shape
    keep = ~may_flip
    assert keep.sum() > keep.size // 2
    assert_within(f0[keep], want[keep], hz[keep], blocks[-1])


# ---------------------------------------------------------------- files


def test_float16_weights_are_widened_exactly(rmvpe, rvc_assets):
    disk = torch.load(rvc_assets / "rmvpe" / "rmvpe.pt", weights_only=True)
    assert {v.dtype for v in disk.values() if v.is_floating_point()} == {torch.float16}
    for key, value in rmvpe.model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32 and torch.equal(value, disk[key].float()), key


def test_float32_file_loads_the_same(rvc_assets, tmp_path, rmvpe):
    disk = torch.load(rvc_assets / "rmvpe" / "rmvpe.pt", weights_only=True)
    torch.save(
        {k: v.float() if v.is_floating_point() else v for k, v in disk.items()}, tmp_path / "r.pt"
    )
    other = R.load_rmvpe(tmp_path / "r.pt")
    for key, value in other.model.state_dict().items():
        assert torch.equal(value, rmvpe.model.state_dict()[key]), key


def test_damaged_and_foreign_files(rvc_assets, tmp_path):
    data = (rvc_assets / "rmvpe" / "rmvpe.pt").read_bytes()
    (tmp_path / "rmvpe.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="RMVPE.*rmvpe.pt.*truncated or corrupt"):
        R.load_rmvpe(tmp_path / "rmvpe.pt")
    hubert = rvc_assets / "hubert_base" / "pytorch_model.bin"
    with pytest.raises(CheckpointError, match="not an RMVPE checkpoint"):
        R.load_rmvpe(hubert)
    disk = torch.load(rvc_assets / "rmvpe" / "rmvpe.pt", weights_only=True)
    del disk["fc.1.bias"]
    torch.save(disk, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: fc\.1\.bias"):
        R.load_rmvpe(tmp_path / "partial.pt")


def test_short_input():
    with pytest.raises(ValueError, match="more than"):
        R.log_mel(torch.zeros(R.N_FFT // 2))
