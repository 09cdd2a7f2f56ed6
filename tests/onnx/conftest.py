"""ONNX Runtime backend fixtures: the Seed-VC kit's checkpoints exported once per test session.

The exports go to a session temp folder (not the user cache), so every run starts cold and the
cache tests see exactly what they did. A tiny random XLS-R with the real output width (1024)
stands in for the content encoder; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.seedvc.conftest import (  # noqa: F401  (fixtures re-exported for this folder)
    DIT,
    assert_rel,
    kit_checkpoints,
    kit_expected,
    kit_geometry,
    kit_inputs,
    seedvc_kit,
    tiny_xlsr,
)


def snr_db(actual, reference) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    noise = np.sum((actual - reference) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference**2) / noise))


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def model_files(kit_checkpoints, tiny_xlsr) -> dict:  # noqa: F811
    return {
        "dit": kit_checkpoints / DIT,
        "hift": kit_checkpoints / "hift.pt",
        "campplus": kit_checkpoints / "campplus_cn_common.bin",
        "content_dir": tiny_xlsr,
    }


def _load(model_files, onnx_cache, precision: str):
    from voicegui.voices.onnx.runtime import OrtSeedVCModel

    return OrtSeedVCModel.load(
        **model_files, device="cpu", precision=precision, cache_dir=onnx_cache, threads=2
    )


@pytest.fixture(scope="session")
def ort_fp32(model_files, onnx_cache):
    return _load(model_files, onnx_cache, "fp32")


@pytest.fixture(scope="session")
def ort_int8(model_files, onnx_cache, ort_fp32):
    return _load(model_files, onnx_cache, "int8")  # quantised from the fp32 exports


@pytest.fixture(scope="session")
def torch_model(model_files):
    from voicegui.voices.seedvc.model import SeedVCModel

    torch.set_num_threads(2)
    return SeedVCModel.load(**model_files, device="cpu")
