"""bf16 and int8 RVC voices against fp32: the SNR of each stage whose precision changed, and of
whole real-time blocks, above floors derived from the precision (and the data's own ranges).

Floors (written out once, used below):

* bf16 keeps 8 significant bits: rounding to nearest errs by up to u = 2^-8 of the value,
  uniformly, a noise of u^2/3 of the signal's power (52.9 dB below it). A layer rounds its
  input, its weights and its output: u^2 per layer (48.2 dB). Over L layers whose errors are
  independent the powers add: SNR >= 10 log10(2^16 / L), L counted from the model itself.
* int8 (dynamic) quantises each layer's input per call over its [min, max] in `levels` steps
  (torch's x86 kernels: 127, a reduced range; onnxruntime: 255) and its weights over
  [-max|w|, max|w|] in 255 steps (onnxruntime's per-channel steps are finer still); a uniform
  step d is a noise of d^2/12. Each layer's two noises relative to its operands' power, summed
  over the layers, measured on the fp32 run's own operands: SNR >= -10 log10(sum).

Both assume unit gain from a layer's error to the output (a block adds the content encoder's
noise to the synthesizer's). Negative controls: the same stage fed its input one frame late (a
streaming misalignment) falls far below each floor.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import soxr
import torch
from torch import nn

from tests.rvc.installed import kit_model
from voicegui.voices import precision as P
from voicegui.voices.precision import snr_db
from voicegui.voices.rvc.checkpoints import load_voice_model
from voicegui.voices.rvc.f0 import pitch_realtime
from voicegui.voices.rvc.hubert import load_hubert
from voicegui.voices.rvc.pipeline import upsample2
from voicegui.voices.rvc.resample import resample
from voicegui.voices.rvc.synthesizer import FLOW_CONTEXT, SynthNoise
from voicegui.voices.rvc.yin import Yin

LAYERS = (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)
TORCH_ACT_LEVELS = 127  # fbgemm's reduce_range: 7-bit activations
ORT_ACT_LEVELS = 255
WEIGHT_LEVELS = 255


def bf16_floor(layers: int) -> float:
    return 10 * math.log10(2**16 / layers)


def count_layers(module: nn.Module, run) -> int:
    """Linear/conv layers that ran (the hooks count calls, so unused ones do not count)."""
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in _layers(module)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return len(calls)


def int8_floor(module: nn.Module, run, act_levels: int, types=LAYERS) -> float:
    """-10 log10 of the summed relative quantisation noise of every layer of ``types`` in
    ``module`` during ``run()`` (fp32), activations in ``act_levels`` steps over their range."""
    rel: list[float] = []

    def hook(m, inputs, _out):
        x, w = inputs[0].detach().double(), m.weight.detach().double()
        dx = float(x.max() - x.min()) / act_levels
        dw = 2 * float(w.abs().max()) / WEIGHT_LEVELS
        rel.append(dx**2 / 12 / float(x.pow(2).mean()) + dw**2 / 12 / float(w.pow(2).mean()))

    hooks = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, types)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return -10 * math.log10(sum(rel))


def coarse_weights(module: nn.Module, levels: int = 15, types=nn.Linear) -> nn.Module:
    """A copy of ``module`` whose layers' weights are rounded to ``levels`` steps (15: 4 bits,
    what a quantiser with the wrong width or scale would leave)."""
    module = copy.deepcopy(module)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, types):
                step = 2 * m.weight.abs().max() / levels
                m.weight.copy_(torch.round(m.weight / step) * step)
    return module


def _layers(module: nn.Module):
    return [m for m in module.modules() if isinstance(m, LAYERS)]


# ---- stage inputs from the kit and real speech --------------------------------------------------
@pytest.fixture(scope="module")
def wav16k(speech_48k) -> torch.Tensor:
    x = torch.from_numpy(speech_48k[: 48000 * 3 // 2])
    return resample(x, 48000, 16000).float()[None]


@pytest.fixture(scope="module")
def hubert(rvc_assets):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load_hubert(rvc_assets / "hubert_base")
    torch.set_num_threads(threads)  # process-wide: later tests get theirs back


@pytest.fixture(scope="module")
def synth(rvc_assets):
    return load_voice_model(kit_model(rvc_assets))[0]


@pytest.fixture(scope="module")
def synth_inputs(hubert, synth, wav16k):
    """One real-time block's synthesizer call: the speech's features (x2 to 100 frames/s), YIN
    pitch, a decoded tail of 30 frames after the flow's context, and fixed noise."""
    feats = upsample2(hubert.features(wav16k, synth.config.version))
    frames = feats.shape[1]
    coarse, f0 = pitch_realtime(Yin().f0(wav16k[0].numpy()), 0.0)
    n = 30
    skip = frames - n
    head = max(skip - FLOW_CONTEXT, 0)
    g = torch.Generator().manual_seed(0)
    noise = SynthNoise(
        z=torch.randn(1, synth.config.inter_channels, frames - head, generator=g),
        sine=torch.randn(n * synth.upp, generator=g),
    )
    kw = dict(skip_head=skip, return_length=n, return_length2=n, noise=noise)
    return feats, coarse[None, :frames], f0[None, :frames], kw


def run_synth(model, feats, coarse, f0, kw) -> np.ndarray:
    return model.infer(feats, coarse, f0, 0, **kw).audio.float().numpy()


def redrawn(kw: dict) -> dict:
    """The same call with the prior's noise drawn again: what a reduced-precision path that drew
    its own noise (e.g. in bf16, another sequence) would compute."""
    z = torch.randn(kw["noise"].z.shape, generator=torch.Generator().manual_seed(1))
    return {**kw, "noise": SynthNoise(z=z, sine=kw["noise"].sine)}


# ---- bf16 ---------------------------------------------------------------------------------------
def test_bf16_content_features(hubert, rvc_assets, wav16k):
    ref = hubert.features(wav16k, "v2").numpy()
    fast = load_hubert(rvc_assets / "hubert_base").to(torch.bfloat16)
    got = fast.features(wav16k, "v2").float().numpy()
    floor = bf16_floor(count_layers(hubert, lambda: hubert.features(wav16k, "v2")))
    snr = snr_db(got, ref)
    print(f"\nHuBERT bf16 vs fp32: {snr:.1f} dB (floor {floor:.1f})")
    assert snr >= floor
    # negative control: the same computation one 20 ms frame late
    shifted = fast.features(torch.roll(wav16k, 320, dims=1), "v2").float().numpy()
    assert snr_db(shifted, ref) < floor


def test_bf16_synthesizer(synth, synth_inputs, rvc_assets):
    feats, coarse, f0, kw = synth_inputs
    ref = run_synth(synth, feats, coarse, f0, kw)
    fast = load_voice_model(kit_model(rvc_assets))[0].set_trunk_dtype(torch.bfloat16)
    assert fast.dec.m_source.l_linear.weight.dtype == torch.float32  # the phase path
    got = run_synth(fast, feats, coarse, f0, kw)
    floor = bf16_floor(count_layers(synth, lambda: run_synth(synth, feats, coarse, f0, kw)))
    snr = snr_db(got, ref)
    print(f"\nsynthesizer bf16 vs fp32: {snr:.1f} dB (floor {floor:.1f})")
    assert snr >= floor
    assert snr_db(run_synth(fast, feats, coarse, f0, redrawn(kw)), ref) < floor  # negative control


# ---- int8 ---------------------------------------------------------------------------------------
def test_int8_content_features_torch(hubert, rvc_assets, wav16k):
    ref = hubert.features(wav16k, "v2").numpy()
    q = load_hubert(rvc_assets / "hubert_base")
    q.encoder = P.quantize_linear_int8(q.encoder)
    got = q.features(wav16k, "v2").numpy()
    floor = int8_floor(
        hubert.encoder, lambda: hubert.features(wav16k, "v2"), TORCH_ACT_LEVELS, nn.Linear
    )
    snr = snr_db(got, ref)
    print(f"\nHuBERT int8 (torch) vs fp32: {snr:.1f} dB (floor {floor:.1f})")
    assert snr >= floor
    coarse = coarse_weights(hubert).features(wav16k, "v2").numpy()
    assert snr_db(coarse, ref) < floor  # negative control: 4-bit weights


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.slow
def test_int8_content_and_synthesizer_onnx(
    hubert, synth, synth_inputs, wav16k, rvc_installed_weights, rvc_assets, onnx_cache
):
    from voicegui.voices.rvc import components as C
    from voicegui.voices.rvc.shared_weights import SharedWeights

    w = rvc_installed_weights
    shared = SharedWeights(w / "hubert_base", w / "rmvpe.pt")
    ref = hubert.features(wav16k, "v2").numpy()
    plan = C.onnx_plan("cpu")
    content = C._load_onnx_content(shared, "v2", "int8", plan, 2, onnx_cache, None)
    floor = int8_floor(
        hubert.encoder, lambda: hubert.features(wav16k, "v2"), ORT_ACT_LEVELS, nn.Linear
    )
    snr = snr_db(content.features(wav16k, "v2").numpy(), ref)
    print(f"\nHuBERT int8 (onnxruntime) vs fp32: {snr:.1f} dB (floor {floor:.1f})")
    assert snr >= floor
    assert snr_db(coarse_weights(hubert).features(wav16k, "v2").numpy(), ref) < floor

    feats, coarse, f0, kw = synth_inputs
    ref = run_synth(synth, feats, coarse, f0, kw)
    q = C._load_onnx_synth(kit_model(rvc_assets), "int8", plan, 2, onnx_cache, None)
    floor = int8_floor(
        synth, lambda: run_synth(synth, feats, coarse, f0, kw), ORT_ACT_LEVELS, LAYERS[1:]
    )
    snr = snr_db(run_synth(q, feats, coarse, f0, kw), ref)
    print(f"synthesizer int8 (onnxruntime) vs fp32: {snr:.1f} dB (floor {floor:.1f})")
    assert snr >= floor
    assert snr_db(run_synth(q, feats, coarse, f0, redrawn(kw)), ref) < floor


# ---- whole blocks -------------------------------------------------------------------------------
@pytest.mark.slow
def test_bf16_voice_blocks(rvc_home, rvc_assets, speech_48k, hubert, synth, wav16k):
    """Real-time blocks of the voice as built for bf16 against fp32 (same window, same noise):
    the content encoder's and the synthesizer's layers both count."""
    from voicegui.settings import VoiceSettings
    from voicegui.voices.rvc.stream import plan_block
    from voicegui.voices.rvc.voice import build_rvc_voice

    def build(precision):
        v = VoiceSettings(voice="rvc", model=str(kit_model(rvc_assets)), f0_method="yin")
        return build_rvc_voice(replace(v, precision=precision, index_rate=0.0))

    ref, fast, late = build("fp32"), build("bf16"), build("bf16")  # each keeps its own state
    assert fast.provider == "CPU (torch, bf16)"
    rate = ref.sample_rate
    zc = rate // 100
    block, left, sola = 20 * zc, 30 * zc, 4 * zc
    plan = plan_block(rate, left + block, block, left - sola, 0, sola)
    x = soxr.resample(speech_48k, 48000, rate).astype(np.float32)
    g = torch.Generator().manual_seed(0)
    head = max(plan.skip_head - FLOW_CONTEXT, 0)
    outs = {"ref": [], "fast": [], "late": []}
    history = np.zeros(left + block, np.float32)
    for k in range(6):
        history = np.concatenate([history, x[k * block : (k + 1) * block]])[-(left + block) :]
        noise = SynthNoise(
            z=torch.randn(1, synth.config.inter_channels, plan.frames - head, generator=g),
            sine=torch.randn(plan.return_length * zc, generator=g),
        )
        outs["ref"].append(ref.stream.infer(history, plan, noise))
        outs["fast"].append(fast.stream.infer(history, plan, noise))
        outs["late"].append(late.stream.infer(np.roll(history, zc), plan, noise))
    layers = count_layers(hubert, lambda: hubert.features(wav16k[:, : plan.window16k], "v2"))
    feats = torch.zeros(1, plan.frames, synth.config.feature_dim)
    pitch = torch.full((1, plan.frames), 100)
    f0 = torch.full((1, plan.frames), 200.0)
    kw = dict(skip_head=plan.skip_head, return_length=plan.return_length)
    layers += count_layers(synth, lambda: synth.infer(feats, pitch, f0, 0, **kw))
    floor = bf16_floor(layers)
    ref_out = np.concatenate(outs["ref"])
    snr = snr_db(np.concatenate(outs["fast"]), ref_out)
    print(f"\nbf16 voice blocks vs fp32: {snr:.1f} dB (floor {floor:.1f}, {layers} layers)")
    assert snr >= floor
    assert snr_db(np.concatenate(outs["late"]), ref_out) < floor  # one 10 ms frame late
