"""The 16 kHz input resampler against the RVC kit: the standalone probe and every block's
freshly resampled tail of the real-time ring. Tolerances: tests/rvc/front_rounding.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rvc.front_kit import stream_geometry, t
from tests.rvc.front_rounding import resample_tolerance
from tests.seedvc.rounding import assert_within
from voicegui.voices.rvc import resample as rs

STREAMS = ("s1", "s2")


def probe_rate(inputs, expected) -> int:
    """The probe's input rate: the output holds ceil(n * 16000 / rate) samples."""
    n, m = inputs["rs_in"].shape[0], expected["rs_out_16k"].shape[0]
    rate = round(n * 16000 / m)
    assert rs.resampled_length(n, rate, 16000) == m
    return rate


def test_probe(rvc_inputs, rvc_expected):
    rate = probe_rate(rvc_inputs, rvc_expected)
    out = rs.to_16k(t(rvc_inputs["rs_in"]), rate)
    assert out.dtype == torch.float32
    tol = resample_tolerance(rvc_inputs["rs_in"], rate, 16000)
    assert_within(out.numpy(), rvc_expected["rs_out_16k"], tol, "rs_out_16k")


@pytest.mark.parametrize("stream", STREAMS)
def test_stream_blocks(rvc_inputs, rvc_expected, stream):
    """Each block, upstream resamples the block with 2 x 10 ms of the audio before it (zeros
    before the stream starts) and drops the first 10 ms at 16 kHz."""
    g = stream_geometry(rvc_inputs, rvc_expected, stream)
    mic = np.concatenate([np.zeros(2 * g.zc, np.float32), rvc_inputs[f"{stream}_in"]])
    for k in g.blocks:
        end = 2 * g.zc + k * g.block_frame
        chunk = mic[end - g.block_frame - 2 * g.zc : end]
        drop = 16000 // 100
        out = rs.to_16k(t(chunk), g.sr)[drop:]
        tol = resample_tolerance(chunk, g.sr, 16000)[drop:]
        name = f"{stream}_b{k}_res_new"
        assert_within(out.numpy(), rvc_expected[name], tol, name)


def test_lengths_batches_and_same_rate():
    x = torch.randn(2, 3, 1001)
    y = rs.resample(x, 44100, 16000)
    assert y.shape == (2, 3, -(-1001 * 160 // 441))
    torch.testing.assert_close(rs.resample(x[1, 2], 44100, 16000), y[1, 2], rtol=0, atol=1e-6)
    assert rs.resample(x, 16000, 16000) is x
    with pytest.raises(ValueError, match="positive"):
        rs.resample(x, 0, 16000)


@pytest.mark.parametrize("rate", [48000, 44100, 32000, 22050])
def test_keeps_a_tone_and_removes_what_16k_cannot_hold(rate):
    n = rate  # one second
    time = torch.arange(n, dtype=torch.float64) / rate
    tone = torch.sin(2 * torch.pi * 440 * time).float()
    y = rs.to_16k(tone, rate).double()
    ref = torch.sin(2 * torch.pi * 440 * torch.arange(y.numel(), dtype=torch.float64) / 16000)
    # away from the zero-padded ends the band-limited tone passes unchanged (the Hann-windowed
    # sinc's passband ripple at 440 Hz is below 1e-3)
    assert (y[200:-200] - ref[200:-200]).abs().max() < 1e-3
    if rate >= 24000:
        # 12 kHz cannot exist at 16 kHz (it would fold to 4 kHz): past the filter's transition
        # band (a 6-zero-crossing Hann sinc from 7.92 kHz) it is attenuated by more than 50 dB
        alias = rs.to_16k(torch.sin(2 * torch.pi * 12000 * time).float(), rate)
        assert alias[200:-200].abs().max() < 10 ** (-50 / 20)
