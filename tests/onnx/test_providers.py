"""Provider choice and the truth about what runs."""

from __future__ import annotations

import logging

import pytest

from voicegui.voices.onnx import providers as PV

ALL_GPU = [PV.TENSORRT, PV.CUDA, PV.CPU]


def test_auto_orders_by_preference():
    avail = [PV.CPU, PV.COREML, PV.CUDA, PV.DIRECTML, PV.TENSORRT]
    plan = PV.plan_providers("auto", avail)
    assert plan.requested == [PV.TENSORRT, PV.CUDA, PV.DIRECTML, PV.COREML, PV.CPU]
    assert not plan.explicit and not plan.warnings


def test_device_choice_is_respected():
    assert PV.plan_providers("cpu", ALL_GPU).requested == [PV.CPU]
    plan = PV.plan_providers("cuda:1", ALL_GPU)
    assert plan.requested == [PV.CUDA, PV.CPU] and plan.device_id == 1 and plan.explicit
    assert PV.plan_providers("mps", [PV.COREML, PV.CPU]).requested == [PV.COREML, PV.CPU]


def test_requested_provider_missing_from_the_build_warns():
    plan = PV.plan_providers("dml", [PV.CUDA, PV.CPU])
    assert plan.requested == [PV.CPU]
    assert plan.warnings and "DirectML" in plan.warnings[0]


def test_provider_that_fails_to_load_warns(caplog):
    plan = PV.plan_providers("cuda", ALL_GPU)
    with caplog.at_level(logging.WARNING, logger="voicegui.voices.onnx.providers"):
        PV.check_active(plan, [PV.CPU])
    assert plan.warnings and "CUDA" in plan.warnings[0] and "CPU" in plan.warnings[0]
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert plan.requested == [PV.CPU]  # later sessions do not retry it


def test_auto_fallback_is_a_note_not_a_warning():
    plan = PV.plan_providers("auto", ALL_GPU)
    PV.check_active(plan, [PV.CPU])
    assert not plan.warnings and plan.notes


def _cuda_works() -> bool:
    from voicegui.voices.onnx.runtime import probe_providers

    return probe_providers(PV.plan_providers("cuda"))[0] == PV.CUDA


def test_cuda_requested_without_cuda_reports_cpu(model_files, onnx_cache, ort_fp32, caplog):
    """On a machine without a usable CUDA: a visible warning, the truth in ``provider``."""
    if PV.CUDA not in PV.available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider at all")
    if _cuda_works():
        pytest.skip("CUDA works here")
    from voicegui.voices.onnx.runtime import OrtSeedVCModel
    from voicegui.voices.seedvc.voice import SeedVCVoice

    with caplog.at_level(logging.WARNING):
        model = OrtSeedVCModel.load(
            **dict(model_files, content_dir=None), device="cuda", cache_dir=onnx_cache
        )
    assert model.provider == "CPU (onnxruntime, int8; CUDA failed to load)"
    assert model.warnings and "CUDA" in model.warnings[0]
    assert any("CUDA" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert all(s.sess.get_providers()[0] == PV.CPU for s in model.stages.values())
    assert SeedVCVoice(model, vad=False).provider == model.provider


def test_physical_cores_is_sane():
    import os

    assert 1 <= PV.physical_cores() <= (os.cpu_count() or 1)
