"""The RVC stream wired to the front ends: the 16 kHz sinc resampler, HuBERT/ContentVec, and a
pitch estimator (RMVPE, FCPE, YIN: anything with ``f0(wav16k) -> Hz per 10 ms frame``) with
RVC's real-time post-processing (unvoiced frames filled, shifted, quantised)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .index import FeatureIndex
from .stream import RvcStream


def build_stream(
    synth,
    hubert,
    estimator=None,
    index: FeatureIndex | None = None,
    f0_method: str = "rmvpe",
    version: str | None = None,
) -> RvcStream:
    """An RvcStream for ``synth`` (torch or ONNX) with ``hubert`` (HubertContent) and
    ``estimator`` (an object with ``f0(wav16k)``; None for a model without pitch)."""
    from .f0 import pitch_realtime
    from .resample import resample

    rate = synth.sample_rate
    version = version or ("v1" if _feature_dim(synth) == 256 else "v2")

    def to16k(wav: torch.Tensor) -> torch.Tensor:
        return resample(wav, rate, 16000)

    def content(wav16k: torch.Tensor) -> torch.Tensor:
        return hubert.features(wav16k, version).float().cpu()

    pitch: Callable | None = None
    if estimator is not None:

        def pitch(seg: torch.Tensor, semitones: float):
            return pitch_realtime(estimator.f0(seg), semitones)

    return RvcStream(
        synth,
        to16k,
        content,
        pitch,
        resample,
        index,
        rmvpe_grid=f0_method == "rmvpe",
    )


def _feature_dim(synth) -> int:
    return getattr(synth, "feature_dim", None) or synth.config.feature_dim
