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
