"""The RVC voice through the engine on a virtual clock (the same BlockProcessor as the live path).

The voice's front ends are simple stand-ins that work on any audio (a polyphase 16 kHz
resampler, features that follow the signal's level, a fixed pitch where the signal is loud), so
the test is about the voice and the engine: lengths, latency, no NaN, settings that take effect
on the next block, repeatable streams.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import signal as sps

from voicegui.engine.offline import convert_array
from voicegui.settings import EngineSettings, Settings, VoiceSettings
from voicegui.voices.base import BlockInfo, VoiceError
from voicegui.voices.rvc.checkpoints import load_voice_model
from voicegui.voices.rvc.index import FeatureIndex
from voicegui.voices.rvc.stream import RvcStream
from voicegui.voices.rvc.voice import RvcVoice

BASE_F0 = 140.0


class SimpleFront:
    def __init__(self, rate: int, dim: int) -> None:
        self.rate, self.dim = rate, dim
        g = np.gcd(rate, 16000)
        self.up, self.down = 16000 // g, rate // g
        self.proj = np.random.default_rng(0).standard_normal((2, dim)).astype(np.float32)
        self.keys: list[float] = []

    def to16k(self, wav: torch.Tensor) -> torch.Tensor:
        y = sps.resample_poly(wav.numpy().astype(np.float64), self.up, self.down)
        return torch.from_numpy(y.astype(np.float32))

    def content(self, wav16k: torch.Tensor) -> torch.Tensor:
        x = wav16k[0].numpy()
        t = (len(x) - 400) // 320 + 1
        frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::320][:t]
        level = np.log(np.mean(frames**2, axis=1) + 1e-6)
        zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=1)), axis=1)
        feats = np.tanh(np.stack([level / 10, zcr], axis=1) @ self.proj)
        return torch.from_numpy(feats[None].astype(np.float32))

    def pitch(self, seg: torch.Tensor, key: float):
        self.keys.append(key)
        x = seg.numpy()
        n = len(x) // 160 + 1
        loud = np.array(
            [np.abs(x[max(0, i * 160 - 512) : i * 160 + 512]).max() > 0.01 for i in range(n)]
        )
        f0 = np.where(loud, BASE_F0, 0.0) * 2 ** (key / 12)
        if loud.any():  # unvoiced frames filled, as RVC's post-processing does
            f0 = np.interp(np.arange(n), np.flatnonzero(loud), f0[loud])
        mel = 1127 * np.log(1 + f0 / 700)
        lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
        coarse = np.clip(np.rint((mel - lo) * 254 / (hi - lo) + 1), 1, 255)
        return torch.from_numpy(coarse.astype(np.int64)), torch.from_numpy(f0.astype(np.float32))


@pytest.fixture(scope="module")
def model(rvc_assets):
    return load_voice_model(sorted((rvc_assets / "weights").glob("*v2_48k*.pth"))[0])[0]


def make_voice(model, index=None) -> tuple[RvcVoice, SimpleFront]:
    front = SimpleFront(model.sample_rate, model.config.feature_dim)
    stream = RvcStream(model, front.to16k, front.content, front.pitch, None, index)
    return RvcVoice(stream, threads=2), front


def speech_like(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(np.float64)
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * env * 0.2
    return x.astype(np.float32)


SETTINGS = Settings(
    engine=EngineSettings(
        block_time=0.1,
        crossfade_time=0.04,
        extra_left_time=0.5,
        extra_right_time=0.01,
        gate_threshold_db=-90.0,
    ),
    voice=VoiceSettings(),
)


@pytest.mark.slow
def test_through_the_engine(model):
    voice, front = make_voice(model)
    x = speech_like(model.sample_rate, 1.2)
    y, proc = convert_array(x, model.sample_rate, voice, SETTINGS)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert proc.voice_errors == 0, proc.last_error
    e, rate = SETTINGS.engine, model.sample_rate
    # block + right context (the voice adds none) + crossfade + the SOLA search's nominal half
    crossfade = round(e.crossfade_time * rate)
    search = min(round(0.01 * rate), crossfade)
    sola = (crossfade + search - search // 2) / rate
    expected = e.block_time + e.extra_right_time + sola
    assert proc.latency().algorithmic == pytest.approx(expected, abs=1e-9)
    assert np.abs(y[int(0.3 * model.sample_rate) :]).max() > 0.01  # it speaks
    assert set(front.keys) == {0.0}


def _window(voice: RvcVoice, rate: int, block: int, x: np.ndarray, k: int, info: BlockInfo):
    n = info.left + info.block + info.right
    hist = np.concatenate([np.zeros(n, np.float32), x[: (k + 1) * block]])[-n:]
    return hist


def test_live_pitch_and_index_take_effect_on_the_next_block(model, rvc_assets):
    index = FeatureIndex.load(sorted((rvc_assets / "indices").glob("*.index"))[0])
    voice, front = make_voice(model, index)
    rate, zc = model.sample_rate, model.sample_rate // 100
    block = 10 * zc
    info = BlockInfo(0, block, 50 * zc, zc, 5 * zc)
    x = speech_like(rate, 1.0)
    voice.reset()
    voice.convert(_window(voice, rate, block, x, 0, info), info)
    before = voice.stream.trace
    voice.update({"pitch": 5.0, "index_rate": 1.0})
    voice.convert(_window(voice, rate, block, x, 1, info), replace(info, index=1))
    after = voice.stream.trace
    assert front.keys == [0.0, 5.0]
    plan = voice._plan
    fresh = plan.f0_samples(True) // 160 + 1 - 4  # frames the new segment wrote
    shift = plan.block16k // 160
    new = after.pitchf[0, -fresh:]
    assert torch.allclose(new[new > 0], torch.tensor(BASE_F0 * 2 ** (5 / 12)), rtol=1e-6)
    kept = after.pitchf[0, -fresh - shift : -fresh]  # cached frames, moved by one block
    assert torch.equal(kept, before.pitchf[0, -fresh : -fresh + shift])
    # the index blend now replaces the frames from skip_head/2 with retrieved vectors
    start = plan.skip_head // 2
    raw = front.content(after.ring16k[None])[0]
    raw = torch.cat([raw, raw[-1:]])
    score, ix = index.search(raw[start:].numpy())
    # rate 1: r * 1 + (1 - 1) * f is r exactly; the rows before start are left as they are
    assert np.array_equal(after.feats[0, start:].numpy(), index.retrieve(score, ix))
    assert torch.equal(after.feats[0, :start], raw[:start])
    raw_before = front.content(before.ring16k[None])[0]
    assert torch.equal(before.feats[0], torch.cat([raw_before, raw_before[-1:]]))  # rate 0


def test_reset_repeats_the_stream(model):
    voice, _ = make_voice(model)
    rate, zc = model.sample_rate, model.sample_rate // 100
    block = 10 * zc
    info = BlockInfo(0, block, 40 * zc, 0, 5 * zc)
    x = speech_like(rate, 0.5)
    runs = []
    for _ in range(2):
        voice.reset()
        runs.append(
            [voice.convert(_window(voice, rate, block, x, k, info), info) for k in range(3)]
        )
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


def test_blocks_of_fractional_frames(model):
    """A block that is not whole 10 ms frames (an odd device rate): the whole window is
    resampled each block and the output still has the asked length."""
    voice, _ = make_voice(model)
    rate = model.sample_rate
    info = BlockInfo(0, 4321, 24007, 100, 700)
    x = speech_like(rate, 0.5)
    voice.reset()
    for k in range(2):
        out = voice.convert(_window(voice, rate, 4321, x, k, info), info)
        assert out.shape == (4321 + 700,) and np.all(np.isfinite(out))


def test_bad_settings_are_refused(model):
    voice, _ = make_voice(model)
    with pytest.raises(VoiceError, match="speaker"):
        voice.update({"speaker": model.emb_g.num_embeddings})
    with pytest.raises(VoiceError, match="index rate"):
        voice.update({"index_rate": 1.5})
