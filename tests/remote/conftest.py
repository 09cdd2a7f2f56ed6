"""The remote voice's tests share one real ``voicegui serve`` on localhost with the rest of the
run (tests/voice_server.py), serving the Seed-VC and RVC parity kits' random-weight checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.seedvc.conftest import (  # noqa: F401 (fixtures)
    kit_checkpoints,
    kit_inputs,
    seedvc_kit,
)
from tests.voice_server import SERVE_PYTHON, THREADS, ServerProcess


@pytest.fixture(scope="session")
def model_dir(served_model_dir) -> Path:
    return served_model_dir


@pytest.fixture(scope="session")
def server(voice_server) -> ServerProcess:
    return voice_server


@pytest.fixture(scope="session")
def local_model(model_dir):
    """The same checkpoints loaded here, the way the app loads them for a local voice."""
    import torch

    from voicegui.voices.seedvc.model import SeedVCModel

    torch.set_num_threads(int(THREADS))
    return SeedVCModel.load(
        model_dir / "DiT_uvit_tat_xlsr_ema.pth",
        model_dir / "hift.pt",
        model_dir / "campplus_cn_common.bin",
        model_dir,
        device="cpu",
        precision="fp32",
    )


def pytest_report_header(config):
    return f"remote voice server environment: {SERVE_PYTHON} ({sys.platform})"
