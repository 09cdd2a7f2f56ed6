"""The export cache: reused across loads, rebuilt when the checkpoint or exporter changes."""

from __future__ import annotations

import os
import time

import pytest

from voicegui.voices.onnx import export as X
from voicegui.voices.onnx.export import EXPORT_COUNTS, ExportCache, Sources
from voicegui.voices.seedvc.checkpoints import read_checkpoint

STAGE = {"dit_prepare": "fp32"}  # the cheapest export (~2 s) made from the DiT checkpoint


@pytest.fixture()
def dit_copy(model_files, tmp_path):
    import shutil

    path = tmp_path / "dit.pth"
    shutil.copy(model_files["dit"], path)
    return path


def _sources(model_files, dit) -> Sources:
    return Sources(dit, model_files["hift"], model_files["campplus"])


def _exports() -> int:
    return EXPORT_COUNTS[("dit_prepare", "fp32")]


def test_second_load_reuses_the_export(model_files, dit_copy, tmp_path):
    root = tmp_path / "cache"
    calls = []
    src = _sources(model_files, dit_copy)
    before = _exports()
    path = ExportCache(root).ensure(STAGE, src, lambda *a: calls.append(a))["dit_prepare"]
    assert _exports() == before + 1
    assert calls == [("dit_prepare (fp32)", 0, 1), ("done", 1, 1)]
    mtime = path.stat().st_mtime_ns
    # a new cache object (as a new process would make) finds it; a touched but unchanged
    # checkpoint hashes the same
    os.utime(dit_copy, (time.time() + 5, time.time() + 5))
    calls.clear()
    again = ExportCache(root).ensure(STAGE, src, lambda *a: calls.append(a))["dit_prepare"]
    assert again == path and path.stat().st_mtime_ns == mtime
    assert _exports() == before + 1 and calls == []


def test_changed_checkpoint_reexports_and_drops_the_old(model_files, dit_copy, tmp_path):
    import torch

    root = tmp_path / "cache"
    src = _sources(model_files, dit_copy)
    before = _exports()
    old = ExportCache(root).ensure(STAGE, src)["dit_prepare"]
    ckpt = read_checkpoint(dit_copy)
    ckpt["net"]["cfm"]["estimator.style_in.bias"] += 1.0
    torch.save(ckpt, dit_copy)
    new = ExportCache(root).ensure(STAGE, src)["dit_prepare"]
    assert _exports() == before + 2
    assert new != old and new.is_file()
    assert not old.parent.exists()  # the stale export of the same file is removed


def test_exporter_version_bump_reexports(model_files, dit_copy, tmp_path):
    root = tmp_path / "cache"
    src = _sources(model_files, dit_copy)
    before = _exports()
    first = ExportCache(root).ensure(STAGE, src)["dit_prepare"]
    second = ExportCache(root, version=X.EXPORTER_VERSION + 1).ensure(STAGE, src)["dit_prepare"]
    assert _exports() == before + 2 and first != second


def test_interrupted_export_is_redone(model_files, dit_copy, tmp_path):
    root = tmp_path / "cache"
    src = _sources(model_files, dit_copy)
    cache = ExportCache(root)
    path = cache.ensure(STAGE, src)["dit_prepare"]
    (path.parent / X.MANIFEST).unlink()  # as if the process died before committing
    before = _exports()
    assert ExportCache(root).ensure(STAGE, src)["dit_prepare"] == path
    assert _exports() == before + 1


def test_whole_model_second_load_exports_nothing(model_files, onnx_cache, ort_fp32, ort_int8):
    from voicegui.voices.onnx.runtime import OrtSeedVCModel

    before = sum(EXPORT_COUNTS.values())
    folders = {p.name: p.stat().st_mtime_ns for p in onnx_cache.glob("*/model.onnx")}
    for precision in ("fp32", "int8"):
        OrtSeedVCModel.load(**model_files, device="cpu", precision=precision, cache_dir=onnx_cache)
    assert sum(EXPORT_COUNTS.values()) == before
    assert {p.name: p.stat().st_mtime_ns for p in onnx_cache.glob("*/model.onnx")} == folders


def test_an_export_that_fails_leaves_no_entry_and_a_good_one_is_kept_per_source(tmp_path):
    """The cache entry RVC's graphs use (the same publish and key as the stages above), with an
    export that writes plain bytes: a failure half-way leaves nothing that a later load takes."""
    import hashlib
    import json

    from voicegui.voices.rvc.onnx_content import MANIFEST, cached_graph

    root, source = tmp_path / "cache", tmp_path / "hubert_base.pt"
    source.write_bytes(b"weights")

    def failing(out):
        out.write_bytes(b"half a graph")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        cached_graph("content", "fp32", [source], failing, root)
    assert [p.name for p in root.iterdir()] == ["hashes.json"]  # no entry, no temporary folder

    written: list = []

    def export(out):
        written.append(out)
        out.write_bytes(b"graph of " + source.read_bytes())

    path = cached_graph("content", "fp32", [source], export, root)
    assert path.read_bytes() == b"graph of weights"
    manifest = json.loads((path.parent / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["sha256"] == [hashlib.sha256(b"weights").hexdigest()]
    assert cached_graph("content", "fp32", [source], export, root) == path
    assert len(written) == 1  # the second load found it
    source.write_bytes(b"other weights")  # new contents: a new key, a new export
    changed = cached_graph("content", "fp32", [source], export, root)
    assert changed != path and changed.read_bytes() == b"graph of other weights"
    assert len(written) == 2
