"""The offline conversion pipeline (kit stage 8) against upstream's file conversions.

The content encoder and the pitch estimator are the pipeline's callables; here they hand back
the kit's own features and pitch for the audio upstream gave them (and check that the pipeline
gave them that audio), so the test covers the pipeline's own steps: high-pass and padding,
index blend, upsampling and frame count, protect, synthesizer inputs, trimming, loudness mix
and int16 scaling.

Tolerances:
* the padded input: scipy's float64 zero-phase filter, rounded to float32 as upstream hands it
  on. The kit's speech is stored in float32, and the filter may have seen it before that
  rounding (up to u |x| per sample, u = 2**-24); a linear filter moves its output by at most
  the L1 norm of its impulse response times the largest input change, ||h||_1 u max|x| (the
  norm is measured on the filter itself), plus one float32 ulp for the final rounding.
* the synthesizer's inputs: bit-exact (the same float32 operations: test_index.py).
* the int16 output: the synthesizer's bound d = rtol_audio * max|synth_out| (synth_rounding.py)
  reaches the output times the loudness gain; the gain itself moves because the output rms
  does: |d rms_out| <= d (rms is 1-Lipschitz in the max norm), so the gain
  rms_in^(1-r) rms_out^(r-1) moves relatively by (1-r) d / rms_out; times 32768 (or the peak
  scale), plus 1 LSB for the truncation to int16 and d / peak of the peak scale.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import offline_runs
from tests.rvc.synth_rounding import rtol_audio
from voicegui.voices.rvc.checkpoints import load_voice_model
from voicegui.voices.rvc.index import FeatureIndex
from voicegui.voices.rvc.pipeline import (
    HOP_16K,
    OfflinePipeline,
    OfflineSettings,
    chunk_starts,
    frame_rms,
    mix_rms,
    protect_mix,
    rms_envelope,
    rms_gain,
    to_int16,
    upsample2,
)
from voicegui.voices.rvc.synthesizer import SynthNoise

U32 = np.finfo(np.float32)


def _tags() -> list[str]:
    kit = rvc_kit_dir()
    return list(offline_runs(kit)) if (kit / "README.md").is_file() else []


TAGS = _tags()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def one_ulp(x: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(np.asarray(x, dtype=np.float32)))


def highpass_gain() -> float:
    """||h||_1 of the forward-backward high-pass, from its response to a unit impulse."""
    from voicegui.voices.rvc.pipeline import highpass

    impulse = np.zeros(64000)
    impulse[32000] = 1
    return float(np.abs(highpass(impulse)).sum())


def input_tolerance(kit_padded: np.ndarray) -> np.ndarray:
    u = 2.0**-24
    return highpass_gain() * u * float(np.abs(kit_padded).max()) + one_ulp(kit_padded)


class KitContent:
    """Stand-in content encoder: checks the audio it gets, returns the kit's features."""

    def __init__(self, audio: np.ndarray, feats: np.ndarray) -> None:
        self.audio, self.feats, self.calls = audio, feats, 0

    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        assert audio.dtype == np.float32 and audio.shape == self.audio.shape
        assert np.all(np.abs(audio - self.audio) <= input_tolerance(self.audio))
        self.calls += 1
        return _t(self.feats)


class KitPitch:
    def __init__(self, audio: np.ndarray, pitch: np.ndarray, pitchf: np.ndarray) -> None:
        self.audio, self.pitch, self.pitchf = audio, pitch, pitchf

    def __call__(self, audio: np.ndarray, frames: int):
        assert np.all(np.abs(audio - self.audio) <= input_tolerance(self.audio))
        assert frames == len(audio) // HOP_16K
        return self.pitch, self.pitchf


class Recorder:
    """The real synthesizer, remembering what each call was given."""

    def __init__(self, synth) -> None:
        self.synth, self.calls = synth, []

    def __getattr__(self, name):
        return getattr(self.synth, name)

    def infer(self, phone, pitch, nsff0, sid, **kw):
        out = self.synth.infer(phone, pitch, nsff0, sid, **kw)
        self.calls.append(dict(phone=phone, pitch=pitch, pitchf=nsff0, audio=out.audio))
        return out


def build(tag, rvc_kit, rvc_assets, rvc_inputs, rvc_expected):
    E, run = rvc_expected, offline_runs(rvc_kit)[tag]
    synth = Recorder(load_voice_model(rvc_assets / "weights" / f"{run['model']}.pth")[0])
    rate = float(run["index_rate"])
    index = None
    if rate > 0:
        index = FeatureIndex.load(sorted((rvc_assets / "indices").glob("*.index"))[0])
    settings = OfflineSettings(
        index_rate=rate, protect=float(run["protect"]), rms_mix_rate=float(run["rms_mix_rate"])
    )
    audio_pad = E[f"{tag}_audio_pad"]
    pipe = OfflinePipeline(
        synth,
        KitContent(audio_pad, E[f"{tag}_feats"]),
        KitPitch(audio_pad, E[f"{tag}_pitch"], E[f"{tag}_pitchf"]),
        index,
        settings,
    )
    noise = SynthNoise(
        z=_t(rvc_inputs[f"{tag}_zp_noise"]), sine=_t(rvc_inputs[f"{tag}_sine_noise"])
    )
    return pipe, synth, (lambda i: noise)


@pytest.mark.parametrize("tag", TAGS)
def test_highpass_and_padding(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, tag):
    pipe, _, _ = build(tag, rvc_kit, rvc_assets, rvc_inputs, rvc_expected)
    _, padded = pipe.pad_input(rvc_inputs["src_wav_16k"])
    kit = rvc_expected[f"{tag}_audio_pad"]
    assert padded.shape == kit.shape
    assert np.all(np.abs(padded.astype(np.float32) - kit) <= input_tolerance(kit))


def int16_tolerance(kit_synth: np.ndarray, pipe: OfflinePipeline, model, frames: int, src16k):
    """LSB bound per sample on |ours - kit| of the int16 output (module docstring)."""
    s = pipe.settings
    d = rtol_audio(model, frames) * float(np.abs(kit_synth).max())
    trim = int(pipe.sample_rate * s.x_pad)
    y = kit_synth[trim:-trim]
    if s.rms_mix_rate != 1:
        audio, _ = pipe.pad_input(src16k)
        gain = rms_gain(audio, y, pipe.sample_rate, s.rms_mix_rate)
        rms_out = np.maximum(rms_envelope(y, pipe.sample_rate, len(y)).numpy(), 1e-6)
        moved = d * gain + np.abs(y) * gain * (1 - s.rms_mix_rate) * d / rms_out
        out = np.abs(y * gain)
    else:
        moved, out = np.full(y.shape, d), np.abs(y).astype(np.float64)
    peak = float(out.max())
    scale = 32768 / max(1.0, peak / 0.99)
    rescaled = out * float(moved.max()) / peak if peak > 0.99 else 0.0  # the peak scale moves
    return scale * (moved + rescaled) + 1


@pytest.mark.slow
@pytest.mark.parametrize("tag", TAGS)
def test_offline_pipeline(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, tag):
    E = rvc_expected
    pipe, synth, noise = build(tag, rvc_kit, rvc_assets, rvc_inputs, rvc_expected)
    out = pipe.convert_int16(rvc_inputs["src_wav_16k"], noise)
    assert pipe.content.calls == 1 and len(synth.calls) == 1  # 2 s: one chunk
    call = synth.calls[0]
    frames = E[f"{tag}_synth_pitch"].shape[-1]
    feats = E.get(f"{tag}_feats_blend", E[f"{tag}_feats"])
    torch.testing.assert_close(call["phone"], upsample2(_t(feats))[:, :frames], rtol=0, atol=0)
    assert torch.equal(call["pitch"], _t(E[f"{tag}_synth_pitch"]))
    assert torch.equal(call["pitchf"], _t(E[f"{tag}_synth_pitchf"]))
    kit = E[f"{tag}_out_int16"]
    assert out.dtype == np.int16 and out.shape == kit.shape
    tol = int16_tolerance(
        E[f"{tag}_synth_out"][0, 0], pipe, synth.synth, frames, rvc_inputs["src_wav_16k"]
    )
    err = np.abs(out.astype(np.int64) - kit)
    assert np.all(err <= tol), f"{tag}: {err.max()} LSB > {tol[np.argmax(err)]:.3g}"


def test_rms_mix_from_kit_synth(rvc_kit, rvc_assets, rvc_inputs, rvc_expected):
    """The loudness mix and int16 step alone, on upstream's own synthesizer output: within
    the rounding of the envelopes (u-level relative) and the int16 truncation: 1 LSB."""
    for tag in TAGS:
        pipe, _, _ = build(tag, rvc_kit, rvc_assets, rvc_inputs, rvc_expected)
        s = pipe.settings
        trim = int(pipe.sample_rate * s.x_pad)
        y = rvc_expected[f"{tag}_synth_out"][0, 0][trim:-trim].copy()
        audio, _ = pipe.pad_input(rvc_inputs["src_wav_16k"])
        if s.rms_mix_rate != 1:
            y = mix_rms(audio, y, pipe.sample_rate, s.rms_mix_rate)
        err = np.abs(to_int16(y).astype(np.int64) - rvc_expected[f"{tag}_out_int16"])
        assert err.max() <= 1, tag


def test_rms_mix_negative_control(rvc_kit, rvc_assets, rvc_inputs, rvc_expected):
    """Envelopes taken over whole seconds (frame = hop = rate) instead of half-second frames
    every quarter second: the kit's output is missed by far more than 1 LSB."""
    tag = next((t for t in TAGS if float(offline_runs(rvc_kit)[t]["rms_mix_rate"]) != 1), None)
    if tag is None:
        pytest.skip("no offline run of this kit mixes the loudness")
    pipe, _, _ = build(tag, rvc_kit, rvc_assets, rvc_inputs, rvc_expected)
    trim = int(pipe.sample_rate * pipe.settings.x_pad)
    y = rvc_expected[f"{tag}_synth_out"][0, 0][trim:-trim].copy()
    audio, _ = pipe.pad_input(rvc_inputs["src_wav_16k"])
    import voicegui.voices.rvc.pipeline as p

    real = p.frame_rms
    p.frame_rms = lambda x, frame, hop: real(x, frame, frame)
    try:
        wrong = mix_rms(audio, y, pipe.sample_rate, pipe.settings.rms_mix_rate)
    finally:
        p.frame_rms = real
    err = np.abs(to_int16(wrong).astype(np.int64) - rvc_expected[f"{tag}_out_int16"])
    assert err.max() > 100


def test_frame_rms_is_centred_mean_square():
    x = np.arange(10, dtype=np.float64)
    r = frame_rms(x, 4, 2)[0]
    xp = np.pad(x, 2)
    expected = [np.sqrt(np.mean(xp[i : i + 4] ** 2)) for i in range(0, len(xp) - 3, 2)]
    np.testing.assert_allclose(r, expected, rtol=1e-15)


def test_protect_keeps_raw_features_where_unvoiced():
    rng = np.random.default_rng(0)
    blended, raw = (
        _t(rng.standard_normal((1, 6, 4)).astype(np.float32)),
        _t(rng.standard_normal((1, 6, 4)).astype(np.float32)),
    )
    f0 = torch.tensor([[0.0, 0.5, 1.0, 120.0, 0.0, 300.0]])
    out = protect_mix(blended, raw, f0, 0.33)
    voiced = (f0[0] >= 1).numpy()
    torch.testing.assert_close(out[0, voiced], blended[0, voiced], rtol=0, atol=0)
    w = torch.tensor(0.33)  # the weight is a float32 tensor, as upstream's
    mix = blended[0, ~voiced] * w + raw[0, ~voiced] * (1 - w)
    torch.testing.assert_close(out[0, ~voiced], mix, rtol=0, atol=0)


def test_to_int16_holds_the_peak():
    loud = np.array([0.0, 0.5, -2.0, 1.98], np.float32)
    q = to_int16(loud)
    assert q[2] == -int(0.99 * 32768)  # the peak scaled to 0.99 of full scale, truncated
    quiet = np.array([0.25, -0.5], np.float32)
    assert list(to_int16(quiet)) == [8192, -16384]


class LevelContent:
    """A content encoder for the chunking test: HuBERT's frame count, features that follow the
    signal's level (so each chunk's own audio shows in its output)."""

    def __init__(self, dim: int) -> None:
        self.dim, self.lengths = dim, []

    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        n = len(audio)
        t = (n - 400) // 320 + 1
        self.lengths.append(n)
        level = np.array([np.abs(audio[i * 320 : i * 320 + 400]).mean() for i in range(t)])
        feats = np.outer(level, np.linspace(-1, 1, self.dim)).astype(np.float32)
        return _t(feats[None])


def test_long_recordings_are_cut_at_quiet_points(rvc_assets):
    """Chunked like RVC: cuts near every x_center seconds at the quietest 10 ms within
    +-x_query, each chunk with x_pad of context; the output is the chunks' outputs joined."""
    settings = OfflineSettings(
        index_rate=0, rms_mix_rate=1, x_pad=0.1, x_query=0.2, x_center=0.6, x_max=0.7
    )
    model = Recorder(load_voice_model(sorted((rvc_assets / "weights").glob("*.pth"))[0])[0])
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    quiet = [int(0.55 * sr), int(1.25 * sr)]  # 20 ms pauses near each 0.6 s mark

    def pitch(a, frames):
        return np.full(frames, 60), np.full(frames, 180.0, np.float32)

    for q in quiet:
        audio[q : q + 320] = 0
    content = LevelContent(model.config.feature_dim)
    pipe = OfflinePipeline(model, content, pitch, None, settings)
    cuts = chunk_starts(pipe.pad_input(audio)[0], settings)  # on the high-passed input
    assert len(cuts) == 2
    for cut, q in zip(cuts, quiet, strict=True):
        assert q - 80 <= cut <= q + 320  # inside the pause (10 ms windows centred)

    out = pipe.convert(audio)
    assert len(model.calls) == 3 and np.all(np.isfinite(out))
    pad_out = int(model.sample_rate * settings.x_pad)
    assert out.shape[0] == sum(c["audio"].shape[-1] - 2 * pad_out for c in model.calls)
    pad = int(sr * settings.x_pad)
    bounds = [0] + [c // HOP_16K * HOP_16K for c in cuts]
    assert content.lengths[:2] == [bounds[i + 1] + 2 * pad + HOP_16K - bounds[i] for i in range(2)]
    assert content.lengths[2] == len(audio) + 2 * pad - bounds[2]
