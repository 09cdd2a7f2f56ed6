"""Numeric precision of the torch backend: which one 'auto' picks, and casting a model to it.

Choices (VoiceSettings.precision, shared with the ONNX backend): 'auto', 'fp32', 'fp16', 'bf16',
'int8'. 'auto' is fp16 on a CUDA GPU; on a CPU it is bf16 where the CPU computes bf16 natively
(AVX512-BF16 or AMX: bf16 matmuls several times faster than fp32 there) and torch's oneDNN
reports bf16 support, else fp32 (without native bf16 the emulated bf16 is slower than fp32).

What each precision does to the Seed-VC model:

* bf16 / fp16: content encoder, length regulator and DiT weights in that dtype; the CFM's Euler
  state stays float32 (each step adds a small velocity to it: a 16-bit state would round the
  increment away); the vocoder's convolution trunk in that dtype, its phase path (f0
  predictor, sine source and its phase sum, the STFT of the source, the magnitude/phase head
  and the inverse STFT) in float32: a phase error of 2^-9 relative on a running phase of
  thousands of radians is a wrong waveform.
* int8: dynamic quantisation (int8 weights, activations quantised per call) of the Linear
  layers of the content encoder and the DiT; everything else float32.
"""

from __future__ import annotations

import sys
from pathlib import Path

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively and torch will use it, and why (for the UI)."""
    import torch

    try:
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        mkldnn = False
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    amx = "amx_bf16" in flags
    if not flags and sys.platform != "linux":
        try:
            amx = bool(torch._C._cpu._init_amx())  # x86 only; False where there is none
        except Exception:
            amx = False
    avx512_bf16 = "avx512_bf16" in flags
    hw = [n for n, ok in (("AMX", amx), ("AVX512-BF16", avx512_bf16)) if ok]
    why = f"torch {capability}, oneDNN bf16 {'yes' if mkldnn else 'no'}, " + (
        "native " + "+".join(hw) if hw else "no native bf16 in this CPU"
    )
    return bool(hw) and mkldnn, why


def resolve(choice: str, device_type: str) -> str:
    """'auto' -> the precision this device runs best; other choices pass through."""
    choice = (choice or "auto").lower()
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice
    if device_type == "cuda":
        return "fp16"
    if device_type == "cpu":
        return "bf16" if native_bf16()[0] else "fp32"
    return "fp32"


def dtype_of(precision: str):
    """The floating dtype weights take at this precision (int8 keeps float32 around its
    quantised layers)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def quantize_linear_int8(module):
    """Dynamic int8 quantisation of every nn.Linear in ``module`` (returns the new module)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def snr_db(actual, reference) -> float:
    """10 log10(|reference|^2 / |actual - reference|^2), in float64."""
    import numpy as np

    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((a - r) ** 2))
    return float("inf") if noise == 0 else 10 * float(np.log10(float(np.sum(r**2)) / noise))


def stage_snrs(ref, test, window, reference, plan, steps: int, cfg: float, seed: int = 0) -> dict:
    """SNR (dB) of ``test``'s output against ``ref``'s (two SeedVCModel) per stage and per block.

    Each stage gets the reference model's input to that stage, so its figure is that stage's
    own error; 'block' chains everything (own content, own prompt). Both models draw the same
    CFM noise and vocoder phases/noise. ``window`` (N,) and ``reference`` at 22.05 kHz.
    """
    import torch

    from voicegui.voices.seedvc.features import resample_22k_to_16k
    from voicegui.voices.seedvc.model import HOP

    def np_(t):
        return t.float().cpu().numpy()

    gen = torch.Generator().manual_seed(seed)
    wav = torch.as_tensor(window, dtype=torch.float32)
    out: dict[str, float] = {}
    with torch.inference_mode():
        wav16 = resample_22k_to_16k(wav)[None]
        c_ref, c_test = ref.content(wav16), test.content(wav16)
        out["content"] = snr_db(np_(c_test), np_(c_ref))
        p_ref = ref.make_prompt(reference, 3.0)
        c_in = c_ref[:, plan.drop_frames :]
        lr_ref = ref.regulator(c_in, plan.mel_frames)
        lr_test = test.regulator(c_in.to(test.dtype), plan.mel_frames)
        out["length_regulator"] = snr_db(np_(lr_test), np_(lr_ref))
        mu = torch.cat([p_ref.cond, lr_ref], dim=1)
        p = p_ref.mel.shape[-1]
        noise = torch.randn(1, 80, mu.shape[1], generator=gen)
        m_ref = ref.cfm.inference(mu, None, p_ref.mel, p_ref.style, steps, cfg, noise=noise)
        m_test = test.cfm.inference(mu, None, p_ref.mel, p_ref.style, steps, cfg, noise=noise)
        out["cfm"] = snr_db(np_(m_test[..., p:]), np_(m_ref[..., p:]))
        mel = m_ref[..., p:].float()
        phase = (torch.rand(1, 9, 1, generator=gen) * 2 - 1) * torch.pi
        phase[:, 0] = 0
        hn = torch.randn(1, 9, mel.shape[-1] * HOP, generator=gen)
        w_ref = ref.vocoder(mel, phase=phase, noise=hn)
        w_test = test.vocoder(mel, phase=phase, noise=hn)
        out["vocoder"] = snr_db(np_(w_test), np_(w_ref))
        p_test = test.make_prompt(reference, 3.0)
        kw = dict(cfm_noise=noise, hift_phase=phase, hift_noise=hn)
        b_ref = ref.infer_block(wav, p_ref, plan, steps, cfg, **kw)
        b_test = test.infer_block(wav, p_test, plan, steps, cfg, **kw)
        out["block"] = snr_db(np_(b_test), np_(b_ref))
    return out
