"""No import or library changes torch's threads behind a voice's back.

Importing ``silero_vad`` (the engine's speech detector, which the Seed-VC voice builds) calls
``torch.set_num_threads(1)``; unguarded, every torch voice ran on one core. The checks run in a
fresh interpreter, because a module import happens once per process: in this test process
silero_vad may already have been imported by another test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.rvc.kit import build_rvc_assets, rvc_kit_dir
from tests.seedvc.conftest import REPO, write_published_layout
from voicegui.threads import physical_cores

PROBE = textwrap.dedent(
    """
    import contextlib, json, sys, threading
    import numpy as np
    import torch
    import voicegui.threads as T
    from voicegui.cli import main

    if sys.argv[2] == "unguarded":  # the negative control: the voice's guards switched off
        T.preserved_torch_threads = contextlib.nullcontext
        T.own_torch_threads = lambda n=None: n
        import voicegui.voices.seedvc.voice as V
        V.own_torch_threads = T.own_torch_threads

    from voicegui.bench import synthetic_speech
    from voicegui.engine.processor import BlockProcessor
    from voicegui.settings import Settings, VoiceSettings, with_changes
    from voicegui.voices.registry import VOICES, create_voice

    assert main(["models", "import", "seedvc", sys.argv[1]]) == 0
    assert main(["models", "import", "rvc", sys.argv[3]]) == 0  # an RVC install's assets/
    torch.set_num_threads(T.physical_cores())
    report = {"cores": T.physical_cores(), "before": torch.get_num_threads(), "built": {}}
    voices = {}
    for name in VOICES:  # every voice the registry knows, built as the app builds it
        settings = VoiceSettings(voice=name, diffusion_steps=1, cfg_rate=0.0, max_prompt_time=1.0,
                                 model=sys.argv[4])
        voices[name] = create_voice(settings)
        report["built"][name] = torch.get_num_threads()

    # a block thread that some other code left at 1 torch thread before the voice ran there
    voice = voices["seedvc"]
    ref = synthetic_speech(1.5, 22050, seed=3)
    voice.prepare(ref, 22050)
    voice.speech_detector = None
    seen = []
    cfm = voice.model.cfm
    inner = cfm.inference
    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return inner(*a, **k)
    cfm.inference = spy
    s = with_changes(Settings(), engine={"block_time": 0.1, "extra_left_time": 0.3,
        "extra_dit_left_time": 0.1, "gate_threshold_db": -90.0},
        voice={"voice": "seedvc", "diffusion_steps": 1, "cfg_rate": 0.0})
    proc = BlockProcessor(voice, s, 22050)
    def block_thread():
        torch.set_num_threads(1)
        torch.ones(8) + 1
        for i in range(2):
            proc.process(ref[i * proc.block_dev : (i + 1) * proc.block_dev])
    t = threading.Thread(target=block_thread)
    t.start()
    t.join()
    report["during_block"] = seen
    print("REPORT " + json.dumps(report))
    """
)


def _rvc_model(assets: Path) -> Path:
    return sorted((assets / "weights").glob("*.pth"))[0]


def _probe(published: tuple[Path, Path], mode: str, tmp_path) -> dict:
    folder, rvc_assets = published
    env = {k: v for k, v in os.environ.items() if k != "VOICEGUI_THREADS"}
    env.update(VOICEGUI_HOME=str(tmp_path / f"home-{mode}"), PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), mode, str(rvc_assets),
         str(_rvc_model(rvc_assets))],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


def _problems(report: dict) -> list[str]:
    """Every way the thread count was changed or left below the physical cores."""
    want = report["cores"]
    bad = [
        f"building {name} left torch at {n} threads (was {report['before']}, cores {want})"
        for name, n in report["built"].items()
        if n != report["before"] or n < want
    ]
    bad += [
        f"a block ran on {n} torch threads (cores {want})"
        for n in report["during_block"]
        if n < want
    ]
    if not report["during_block"]:
        bad.append("no block reached the model")
    return bad


@pytest.fixture(scope="module")
def published(kit_checkpoints, tmp_path_factory) -> tuple[Path, Path]:
    """The Seed-VC weights in their published layout, and the RVC kit's assets/ folder."""
    kit = rvc_kit_dir()
    if not (kit / "expected.npz").is_file():
        pytest.skip(f"RVC parity kit not found at {kit} (set VOICEGUI_RVC_FIXTURES)")
    folder = write_published_layout(kit_checkpoints, tmp_path_factory.mktemp("published"))
    return folder, build_rvc_assets(kit)


def test_building_any_voice_keeps_torch_threads(published, tmp_path):
    report = _probe(published, "guarded", tmp_path)
    assert set(report["built"]) >= {"dsp", "passthrough", "seedvc", "rvc"}
    assert _problems(report) == []


@pytest.mark.skipif(physical_cores() < 2, reason="one core: a drop to 1 thread is invisible")
def test_negative_control_unguarded_import_is_caught(published, tmp_path):
    # With the guards off, silero_vad's import drops torch to 1 thread and the block thread's
    # own setting stays at 1: the same check must report both.
    problems = _problems(_probe(published, "unguarded", tmp_path))
    assert any("building seedvc left torch at 1" in p for p in problems), problems
    assert any("a block ran on 1 torch threads" in p for p in problems), problems
