"""The real-time path (kit stage 9) block by block against upstream's streams.

The stream's front ends (16 kHz resampler, content encoder, pitch estimator with its
post-processing, and the formant resampler) are the stream's callables; here they hand back the
kit's own values for each block and check what the stream gave them (the 16 kHz window it kept,
the pitch segment, the key). Everything between is the product's: the 16 kHz window updated with
the new block only, the feature tail and index blend, the pitch cache, the synthesizer with
skip_head/return_length/formant, the cut, the loudness mix; and the engine's SOLA on top.

Tolerances: the synthesizer's (synth_rounding.py) and the index blend's (index_rounding.py);
for the loudness gain (rms_in / max(rms_out, 1e-3))^(1-r): the output rms moves by at most the
output's own difference d (rms is 1-Lipschitz in the max norm), so the gain moves relatively
by (1-r) d / max(rms_out, 1e-3), plus a few float32 roundings (4 u) of the division and power.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.rvc.index_rounding import searched_blend_tolerance
from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import stream_blocks, stream_settings
from tests.rvc.synth_rounding import rtol_audio
from voicegui.engine.sola import Sola
from voicegui.voices.rvc.checkpoints import load_voice_model
from voicegui.voices.rvc.index import FeatureIndex
from voicegui.voices.rvc.stream import RvcStream, loudness_gain, plan_block
from voicegui.voices.rvc.synthesizer import SynthNoise

U = 2.0**-24


def _streams() -> list[str]:
    kit = rvc_kit_dir()
    return list(stream_settings(kit)) if (kit / "README.md").is_file() else []


STREAMS = _streams()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def upstream_integers(s: dict) -> dict:
    """What upstream's real-time GUI derives from its settings (start_vc), written down here
    to check the kit's table and our plan against."""
    sr = int(s["tgt_sr"])
    zc = sr // 100
    frames = lambda t: int(np.round(float(t) * sr / zc)) * zc  # noqa: E731
    block, crossfade, extra = (
        frames(s["block_time"]),
        frames(s["crossfade_time"]),
        frames(s["extra_time"]),
    )
    sola_buffer, search = min(crossfade, 4 * zc), zc
    window = extra + crossfade + search + block
    factor = 2 ** (float(s["formant"]) / 12)
    return_length = (block + sola_buffer + search) // zc
    f0_frame = 160 * block // zc + 800
    if s["f0method"] == "rmvpe":
        f0_frame = 5120 * ((f0_frame - 1) // 5120 + 1) - 160
    return dict(
        zc=zc,
        block_frame=block,
        block_frame_16k=160 * block // zc,
        crossfade_frame=crossfade,
        sola_buffer_frame=sola_buffer,
        sola_search_frame=search,
        extra_frame=extra,
        input_wav_len=window,
        input_wav_res_len=160 * window // zc,
        skip_head=extra // zc,
        return_length=return_length,
        return_length2=math.ceil(return_length * factor),
        upp_res=int(np.floor(factor * sr // 100)),
        p_len=160 * window // zc // 160,
        f0_extractor_frame=f0_frame,
    )


def engine_window(s: dict) -> dict:
    """Upstream's buffer in the engine's terms: the output (block + SOLA buffer + search) ends
    crossfade - sola_buffer before the window's end (right context)."""
    u = upstream_integers(s)
    sola_extra = u["sola_buffer_frame"] + u["sola_search_frame"]
    right = u["crossfade_frame"] - u["sola_buffer_frame"]
    left = u["input_wav_len"] - u["block_frame"] - right
    return dict(
        window=u["input_wav_len"],
        block=u["block_frame"],
        left=left,
        right=right,
        sola_extra=sola_extra,
    )


@pytest.mark.parametrize("stream", STREAMS)
def test_geometry_matches_upstream(rvc_kit, stream):
    s = stream_settings(rvc_kit)[stream]
    u = upstream_integers(s)
    for key, value in u.items():
        if key in s:
            assert int(s[key]) == value, key
    w = engine_window(s)
    plan = plan_block(int(s["tgt_sr"]), **w)
    assert plan.skip_head == int(s["skip_head"])
    assert plan.return_length == int(s["return_length"])
    assert plan.frames == int(s["p_len"])
    assert plan.window16k == int(s["input_wav_res_len"])
    assert plan.block16k == int(s["block_frame_16k"])
    assert plan.f0_samples(s["f0method"] == "rmvpe") == int(s["f0_extractor_frame"])
    assert plan.out_start == plan.skip_head * plan.zc and plan.incremental


class KitFront:
    """The kit's values for each block of one stream, checking what the stream asks for."""

    def __init__(self, E: dict, stream: str, s: dict) -> None:
        self.E, self.s = E, s
        self.u = upstream_integers(s)
        self.blocks = stream_blocks(E, stream)
        self.k = -1
        self.ring = torch.zeros(self.u["input_wav_res_len"])
        self.key = float(s["pitch"]) - float(s["formant"])

    @property
    def prefix(self) -> str:
        return self.blocks[self.k]

    def to16k(self, wav: torch.Tensor) -> torch.Tensor:
        self.k += 1
        u = self.u
        assert wav.shape[0] == u["block_frame"] + 2 * u["zc"]
        new = _t(self.E[self.prefix + "res_new"])
        self.ring[: -u["block_frame_16k"]] = self.ring[u["block_frame_16k"] :].clone()
        self.ring[-new.shape[0] :] = new
        return torch.cat([torch.zeros(160), new])  # the first 160 samples are dropped

    def content(self, wav16k: torch.Tensor) -> torch.Tensor:
        assert torch.equal(wav16k[0], self.ring)
        return _t(self.E[self.prefix + "feats"])

    def pitch(self, seg: torch.Tensor, key: float):
        assert seg.shape[0] == self.u["f0_extractor_frame"] and key == self.key
        assert torch.equal(seg, self.ring[-seg.shape[0] :])
        return _t(self.E[self.prefix + "pitch"]), _t(self.E[self.prefix + "pitchf"])

    def resample(self, wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        u = self.u
        assert (orig, new) == (u["upp_res"], u["zc"])
        assert wav.shape[0] == u["return_length"] * u["upp_res"]
        return _t(self.E[self.prefix + "infer_wav"])


def run_stream(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, stream):
    E, s = rvc_expected, stream_settings(rvc_kit)[stream]
    model = load_voice_model(rvc_assets / "weights" / f"{s['model']}.pth")[0]
    index = None
    if float(s["index_rate"]) > 0:
        index = FeatureIndex.load(sorted((rvc_assets / "indices").glob("*.index"))[0])
    front = KitFront(E, stream, s)
    rvc = RvcStream(
        model,
        front.to16k,
        front.content,
        front.pitch,
        front.resample,
        index,
        rmvpe_grid=s["f0method"] == "rmvpe",
    )
    rvc.params.pitch, rvc.params.formant = float(s["pitch"]), float(s["formant"])
    rvc.params.index_rate, rvc.params.rms_mix_rate = (
        float(s["index_rate"]),
        float(s["rms_mix_rate"]),
    )
    w = engine_window(s)
    plan = plan_block(int(s["tgt_sr"]), **w)
    signal = rvc_inputs[f"{stream}_in"]
    history = np.zeros(w["window"], np.float32)
    results = []
    for k, prefix in enumerate(front.blocks):
        history = np.concatenate([history, signal[k * w["block"] : (k + 1) * w["block"]]])[
            -w["window"] :
        ]
        noise = SynthNoise(
            z=_t(rvc_inputs[prefix + "zp_noise"]), sine=_t(rvc_inputs[prefix + "sine_noise"])
        )
        out = rvc.infer(history, plan, noise)
        results.append((prefix, out, rvc.trace))
    return model, index, plan, front, results


@pytest.mark.slow
@pytest.mark.parametrize("stream", STREAMS)
def test_stream_blocks_match_upstream(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, stream):
    E, s = rvc_expected, stream_settings(rvc_kit)[stream]
    model, index, plan, front, results = run_stream(
        rvc_kit, rvc_assets, rvc_inputs, rvc_expected, stream
    )
    rate = float(s["rms_mix_rate"])
    sola = Sola(plan.block, int(s["sola_buffer_frame"]), int(s["sola_search_frame"]))
    for k, (prefix, out, trace) in enumerate(results):
        # the pitch cache as upstream handed it to the synthesizer
        assert torch.equal(trace.pitch, _t(E[prefix + "synth_pitch"])), prefix
        assert torch.equal(trace.pitchf, _t(E[prefix + "synth_pitchf"])), prefix
        if index is not None:
            start = plan.skip_head // 2
            ours = trace.feats[0, start:].numpy()
            tail = E[prefix + "feats_blend_tail"][0]
            feats = np.concatenate([E[prefix + "feats"][0], E[prefix + "feats"][0, -1:]])[start:]
            tol = searched_blend_tolerance(
                feats,
                index.vectors,
                E[prefix + "index_ix"],
                E[prefix + "index_score"],
                float(s["index_rate"]),
            )
            assert np.all(np.abs(ours - tail) <= tol), prefix
        synth = E[prefix + "synth_out"]
        d = rtol_audio(model, plan.frames) * float(np.abs(synth).max())
        assert np.abs(trace.synth_out.numpy() - synth[0, 0]).max() <= d, prefix
        y = E[prefix + "infer_wav"]
        d_y = d if plan.return_length == int(s["return_length2"]) else 0.0  # formant: kit's own
        assert np.abs(trace.infer_wav.numpy() - y).max() <= d_y + 1e-30, prefix
        gain_kit = E[prefix + "rms_gain"] if rate < 1 else np.ones_like(y)
        if rate < 1:
            env = loudness_gain(np.ones_like(y), y, plan.zc, 0.0)  # 1 / max(rms_out, 1e-3)
            rel = (1 - rate) * d_y * env + 4 * U
            assert np.all(np.abs(trace.gain - gain_kit) <= gain_kit * rel), prefix
        else:
            rel = 0.0
        tol_out = d_y * gain_kit + np.abs(y) * gain_kit * rel + 2 * U * np.abs(y * gain_kit)
        expected = (y * gain_kit)[: plan.out_len]
        assert np.all(np.abs(out - expected) <= tol_out[: plan.out_len]), prefix
        # the engine's SOLA on top, from the second block (upstream starts from an all-zero
        # buffer at offset 0; the engine from the middle of the search): same offset, same
        # samples, with the buffer upstream kept
        if k:
            sola.tail[:] = E[results[k - 1][0] + "sola_buffer"]
            sola.has_tail = True
            block = sola.splice(out)
            assert sola.last_offset == int(E[prefix + "sola_offset"]), prefix
            # the fades: upstream's float32 sin^2 of a float32 ramp against the engine's float64
            # one rounded: <= 8 u apart (ramp 1.6 u, sin 2 u, square 2 u, rounding 1 u), on
            # both terms of the crossfade, plus its own two roundings
            buf = np.abs(E[results[k - 1][0] + "sola_buffer"])
            seg = np.abs(out[sola.last_offset : sola.last_offset + buf.shape[0]])
            fade = 8 * U * (seg + buf) + 2 * U * (seg + buf)
            tol = tol_out[sola.last_offset : sola.last_offset + plan.block].copy()
            tol[: fade.shape[0]] += fade
            assert np.all(np.abs(block - E[prefix + "outdata"]) <= tol + 1e-12), prefix
            tail_tol = tol_out[sola.last_offset + plan.block :][: sola.tail.shape[0]]
            assert np.all(np.abs(sola.tail - E[prefix + "sola_buffer"]) <= tail_tol + 1e-12)
    last = results[-1][2].ring16k
    assert torch.equal(last, _t(E[f"{stream}_last_input_wav_res"]))


@pytest.mark.parametrize("stream", STREAMS)
def test_negative_control_loudness_frames(
    rvc_kit, rvc_assets, rvc_inputs, rvc_expected, stream, monkeypatch
):
    """The loudness envelopes over back-to-back 40 ms frames (hop = frame) instead of 40 ms
    frames every 10 ms: the gain leaves the tolerance test_stream_blocks_match_upstream uses."""
    s = stream_settings(rvc_kit)[stream]
    rate = float(s["rms_mix_rate"])
    if rate >= 1:
        pytest.skip("this stream does not mix the loudness")
    import voicegui.voices.rvc.stream as stream_module

    real = stream_module.rms_frames
    monkeypatch.setattr(stream_module, "rms_frames", lambda x, frame, hop: real(x, frame, frame))
    model, _, plan, _, results = run_stream(rvc_kit, rvc_assets, rvc_inputs, rvc_expected, stream)
    missed = False
    for prefix, _, trace in results:
        y, g = rvc_expected[prefix + "infer_wav"], rvc_expected[prefix + "rms_gain"]
        synth = rvc_expected[prefix + "synth_out"]
        d = rtol_audio(model, plan.frames) * float(np.abs(synth).max())
        env = 1 / np.maximum(real(y, 4 * plan.zc, plan.zc)[0].max(), 1e-3)  # loosest point
        rel = (1 - rate) * d * max(env, 1e3) + 4 * U
        missed |= bool(np.any(np.abs(trace.gain - g) > g * rel))
    assert missed
