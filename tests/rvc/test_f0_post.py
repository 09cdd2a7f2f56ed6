"""f0 post-processing and quantisation (both upstream variants) and the real-time pitch cache,
against the RVC kit. The keys (semitone shifts) are read off the kit's arrays.

Exactness: filling (np.interp) and the shift (one IEEE product) are correctly rounded, so the
continuous f0 must match bit for bit on any CPU. The coarse pitch rounds a float32 (real time)
or float64 (offline) mel value; a vectorised float32 log may differ by an ulp between CPUs,
which can flip a coarse value only where the mel value lies within COARSE_SLACK of a rounding
tie (derivation below). Such frames may differ by one, every other frame must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rvc.front_kit import block_numbers, key_from, stream_geometry, t
from tests.rvc.front_rounding import U
from voicegui.voices.rvc import f0 as f0post

# float32 quantisation error, in coarse bins: 1127 ln(1 + f/700) carries the division's and the
# sum's rounding (2u, absolute 2u after the log) and the log's own ulp (<= 2u of ln <= 1.4),
# ~5u; times 1127 and rounded (u * 1064): <= 7.3e-4... * 0.2574 bins per mel (254 / 986.6)
# -> 1.0e-4 bins; the subtraction, product, division and the +1 on values <= 255 add 4u * 255 =
# 6.1e-5 bins. 2e-4 bins covers both (float64 offline: ~1e-12).
COARSE_SLACK = 1127 * 7 * U * 254 / (f0post.MEL_MAX - f0post.MEL_MIN) + 4 * U * 255


def tie_distance(f0: np.ndarray) -> np.ndarray:
    """Distance of each frame's unrounded coarse value from a rounding tie (float64)."""
    f0 = np.asarray(f0, dtype=np.float64)
    mel = 1127 * np.log(1 + f0 / 700)
    v = np.where(mel > 0, (mel - f0post.MEL_MIN) * 254 / (f0post.MEL_MAX - f0post.MEL_MIN) + 1, 0)
    v = np.clip(v, 1, 255)
    return np.abs(v - np.floor(v) - 0.5)


def assert_coarse(actual, expected, f0, name: str) -> None:
    actual, expected = np.asarray(actual).reshape(-1), np.asarray(expected).reshape(-1)
    assert actual.shape == expected.shape, name
    near_tie = tie_distance(f0) < COARSE_SLACK
    diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert (diff[~near_tie] == 0).all(), f"{name}: {int((diff[~near_tie] > 0).sum())} frames differ"
    assert (diff[near_tie] <= 1).all(), name


def raw_probe(inputs, expected) -> np.ndarray:
    # the probe's stand-in f0 model handed over f0q_in in the dtype the offline output keeps
    return inputs["f0q_in"].astype(expected["f0q_pl_pitchf"].dtype)


def test_slack_is_what_the_comment_says():
    assert 1e-4 < COARSE_SLACK < 2e-4


def test_probe_realtime(rvc_inputs, rvc_expected):
    raw = raw_probe(rvc_inputs, rvc_expected)
    key = key_from(raw, rvc_expected["f0q_rt_pitchf"])
    pitch, pitchf = f0post.pitch_realtime(raw, key)
    assert pitch.dtype == torch.int64 and pitchf.dtype == torch.float32
    assert np.array_equal(pitchf.numpy(), rvc_expected["f0q_rt_pitchf"])
    assert_coarse(pitch.numpy(), rvc_expected["f0q_rt_pitch"], pitchf.numpy(), "f0q_rt_pitch")


def test_probe_offline(rvc_inputs, rvc_expected):
    raw = raw_probe(rvc_inputs, rvc_expected)
    key = key_from(raw, rvc_expected["f0q_pl_pitchf"])
    pitch, pitchf = f0post.pitch_offline(raw, key)
    assert pitch.dtype == np.int32 and pitchf.dtype == rvc_expected["f0q_pl_pitchf"].dtype
    assert np.array_equal(pitchf, rvc_expected["f0q_pl_pitchf"])
    assert_coarse(pitch, rvc_expected["f0q_pl_pitch"], pitchf, "f0q_pl_pitch")
    # both variants agree on the probe, as upstream's did
    assert np.array_equal(pitch, f0post.pitch_realtime(raw, key)[0].numpy())


@pytest.mark.parametrize("model", ["rmvpe", "fcpe"])
def test_realtime_from_the_kits_f0(rvc_expected, model):
    raw = rvc_expected[f"{model}_f0"].reshape(-1)
    key = key_from(raw, rvc_expected[f"rt_{model}_pitchf"])
    pitch, pitchf = f0post.pitch_realtime(raw, key)
    assert np.array_equal(pitchf.numpy(), rvc_expected[f"rt_{model}_pitchf"])
    assert_coarse(pitch.numpy(), rvc_expected[f"rt_{model}_pitch"], pitchf.numpy(), model)


@pytest.mark.parametrize("stream", ["s1", "s2"])
def test_stream_blocks_from_the_kits_f0(rvc_expected, stream):
    """Each block's raw f0 (the f0 model on the ring's tail) -> pitch and pitchf; the key is
    the pitch setting minus the formant shift (read off the arrays)."""
    for k in block_numbers(rvc_expected, stream, "f0_raw"):
        raw = rvc_expected[f"{stream}_b{k}_f0_raw"]
        key = key_from(raw, rvc_expected[f"{stream}_b{k}_pitchf"])
        pitch, pitchf = f0post.pitch_realtime(raw, key)
        assert np.array_equal(pitchf.numpy(), rvc_expected[f"{stream}_b{k}_pitchf"])
        name = f"{stream}_b{k}_pitch"
        assert_coarse(pitch.numpy(), rvc_expected[name], pitchf.numpy(), name)


@pytest.mark.parametrize("stream", ["s1", "s2"])
def test_pitch_cache(rvc_inputs, rvc_expected, stream):
    """The cache moves by the block's frames and takes each block's pitch[3:-1]; the synthesizer
    gets its last p_len frames, the f0 scaled by return_length2 / return_length."""
    g = stream_geometry(rvc_inputs, rvc_expected, stream)
    cache = f0post.PitchCache()
    for k in g.blocks:
        cache.push(
            t(rvc_expected[f"{stream}_b{k}_pitch"]),
            t(rvc_expected[f"{stream}_b{k}_pitchf"]),
            g.shift_frames,
        )
        want_p, want_f = (rvc_expected[f"{stream}_b{k}_synth_{n}"] for n in ("pitch", "pitchf"))
        pitch, pitchf = cache.tail(want_p.shape[-1], g.return_length2, g.return_length)
        assert np.array_equal(pitch.numpy(), want_p), f"{stream}_b{k}_synth_pitch"
        assert np.array_equal(pitchf.numpy(), want_f), f"{stream}_b{k}_synth_pitchf"


def test_fill_unvoiced():
    f0 = np.array([0, 0, 100, 0, 300, 0, 0], dtype=np.float32)
    filled = f0post.fill_unvoiced(f0)
    assert filled.dtype == np.float32 and f0[0] == 0  # a copy
    assert filled.tolist() == [100, 100, 100, 200, 300, 300, 300]
    silent = np.zeros(5)
    assert f0post.fill_unvoiced(silent).tolist() == [0] * 5  # nothing to fill from: unvoiced


def test_coarse_range_and_unvoiced():
    pitch, _ = f0post.quantise_torch(np.array([0.0, 20.0, 50.0, 1100.0, 5000.0]))
    assert pitch.tolist()[:3] == [1, 1, 1] and pitch.tolist()[3:] == [255, 255]
    assert f0post.quantise_numpy(np.array([0.0, 50.0, 1100.0, 5000.0])).tolist() == [1, 1, 255, 255]
    # a semitone up is about 1.5-3 coarse steps in the speaking range: shifts are visible
    up = f0post.pitch_realtime(np.array([200.0]), 12)[0].item()
    assert up > f0post.pitch_realtime(np.array([200.0]), 0)[0].item() + 12


def test_cache_refuses_what_it_cannot_hold():
    cache = f0post.PitchCache(size=64)
    with pytest.raises(ValueError):
        cache.push(torch.ones(65, dtype=torch.long), torch.ones(65), 1)
    with pytest.raises(ValueError):
        cache.push(torch.ones(8, dtype=torch.long), torch.ones(8), 64)


def test_formant_key():
    assert f0post.realtime_key(4, 0.5) == 3.5
    assert f0post.formant_factor(12) == 2.0
