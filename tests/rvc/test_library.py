"""The RVC voice library and shared weights with the kit's real files (and damaged copies).

What the library lists is compared with what the kit says about each file: its
make_checkpoints.py (config, sr, version, f0 of every model) and its keys_*.json listings
(tensor shapes), never with numbers written here.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.rvc.model_files import CommandPayload, unsafe_pth
from voicegui import modelhub
from voicegui.cli import main, settings_from_args
from voicegui.settings import Settings, SettingsError, VoiceSettings, with_changes
from voicegui.voices.catalog import voice_available, voice_identity
from voicegui.voices.rvc import library, shared_weights, torch_file
from voicegui.voices.rvc.library import LibraryError
from voicegui.voices.rvc.model_info import read_index_info, read_model_info

REPO = Path(__file__).resolve().parents[2]


# ---- what the kit says -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kit_script(rvc_kit):
    spec = importlib.util.spec_from_file_location(
        "rvc_kit_make_checkpoints", rvc_kit / "make_checkpoints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def voice_files(rvc_assets) -> list[Path]:
    files = sorted((rvc_assets / "weights").glob("*.pth"))
    assert files, "the kit wrote no voice models"
    return files


@pytest.fixture(scope="session")
def index_file(rvc_assets) -> Path:
    (found,) = sorted((rvc_assets / "indices").glob("*.index"))
    return found


def kit_expectation(kit, rvc_kit: Path, stem: str) -> dict:
    """Version, width, rate, f0 and speakers of a kit model, from the kit's own script and key
    listing."""
    made = kit.MODEL_CONFIGS[stem]
    entries = json.loads((rvc_kit / f"keys_{stem}.json").read_text())["entries"]
    phone = entries[f"{stem}.enc_p.emb_phone.weight"]["shape"]
    return {
        "version": made["version"],
        "feature_dim": phone[1],
        "sample_rate": made["config"][-1],
        "sr_key": made["sr"],
        "f0": bool(made["f0"]) and f"{stem}.enc_p.emb_pitch.weight" in entries,
        "speakers": entries[f"{stem}.emb_g.weight"]["shape"][0],
    }


def by_version(voice_files, version: str) -> Path:
    for f in voice_files:
        if read_model_info(f).version == version:
            return f
    pytest.skip(f"the kit has no {version} model")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- metadata from the files themselves ------------------------------------------------------
def test_pth_metadata_matches_what_the_kit_says(voice_files, kit_script, rvc_kit):
    for f in voice_files:
        info = read_model_info(f)
        want = kit_expectation(kit_script, rvc_kit, f.stem)
        assert info.ok, info.error
        assert (info.kind, info.version, info.feature_dim) == (
            "pth",
            want["version"],
            want["feature_dim"],
        )
        assert info.sample_rate == want["sample_rate"]
        assert info.sample_rate == int(want["sr_key"].rstrip("k")) * 1000
        assert info.f0 is want["f0"] and info.speakers == want["speakers"]
        assert info.size == f.stat().st_size and info.vocoder == "HiFi-GAN"


def test_header_reader_sees_what_torch_loads(voice_files):
    """The torch-free reader against torch.load(weights_only=True): every key, shape, dtype."""
    torch = pytest.importorskip("torch")
    f = voice_files[0]
    stubs = torch_file.read(f).obj
    real = torch.load(f, map_location="cpu", weights_only=True)
    assert set(stubs) == set(real)
    assert stubs["config"] == real["config"] and stubs["sr"] == real["sr"]
    assert list(stubs["weight"]) == list(real["weight"])
    for key, t in real["weight"].items():
        stub = stubs["weight"][key]
        assert stub.shape == tuple(t.shape) and stub.dtype == str(t.dtype).removeprefix("torch.")


def test_listing_imports_neither_torch_nor_onnx(voice_files, index_file, tmp_path):
    """The window lists the library: reading headers must not load the neural libraries."""
    library.import_model(voice_files[0], pitch=1.0)
    onnx_voice = write_onnx(
        tmp_path / "v.onnx", dim=256, rates=[10, 10, 2, 2], f0=True, metadata=None, layout="rvc"
    )
    library.import_model(onnx_voice)
    code = (
        "import sys, json; from voicegui.voices.rvc import library; "
        "ms = library.list_models(); "
        "print(json.dumps([[m.name, m.ok] for m in ms] + [sorted(k for k in "
        "('torch', 'onnx', 'onnxruntime', 'faiss') if k in sys.modules)]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    *listed, loaded = json.loads(done.stdout)
    assert listed == [[voice_files[0].stem, True], ["v", True]] and loaded == []


def test_index_header(index_file, voice_files):
    info = read_index_info(index_file)
    v2 = read_model_info(by_version(voice_files, "v2"))
    assert info.ok and info.dim == v2.feature_dim
    # the faiss file holds every vector as float32 in its lists
    assert info.vectors > 0 and info.size >= info.vectors * info.dim * 4
    assert not read_index_info(voice_files[0]).ok  # a .pth is not an index


# ---- import, list, default pitch, removal ------------------------------------------------------
def test_import_list_pitch_and_remove_with_a_non_ascii_name(voice_files, index_file, tmp_path):
    v2 = by_version(voice_files, "v2")
    named = tmp_path / "Голос ünïcode 声.pth"  # what users' files are called
    shutil.copyfile(v2, named)
    entry = library.import_model(named, index=index_file, pitch=3.5)
    assert entry.name == "Голос ünïcode 声" and entry.ok
    assert entry.has_index and entry.pitch == 3.5
    assert sha256(entry.model) == sha256(v2) and sha256(entry.index) == sha256(index_file)
    assert entry.size == v2.stat().st_size + index_file.stat().st_size

    for f in voice_files:
        library.import_model(f)
    listed = {m.name: m for m in library.list_models()}
    assert set(listed) == {entry.name} | {f.stem for f in voice_files}
    for f in voice_files:
        m = listed[f.stem]
        assert m.ok and not m.has_index and m.pitch == 0.0
        assert m.info.summary() == read_model_info(f).summary()
        assert m.size == f.stat().st_size
    assert not [p for p in library.library_dir().iterdir() if p.name.startswith(".")]

    # default pitch: saved next to the model, read back, range-checked
    library.set_default_pitch(entry.name, -7.25)
    assert library.get(entry.name).pitch == -7.25
    saved = json.loads((entry.folder / library.SETTINGS_FILE).read_text(encoding="utf-8"))
    assert saved["pitch"] == -7.25
    with pytest.raises(LibraryError, match="between -24 and 24"):
        library.set_default_pitch(entry.name, 30)
    assert library.get(entry.name).pitch == -7.25

    # a name resolves to the library's files; a path to itself
    r = library.resolve(entry.name)
    assert (r.model, r.index) == (entry.model, entry.index)
    assert library.resolve(str(v2)).model == v2 and library.resolve(str(v2)).index is None

    library.remove(entry.name)
    assert entry.name not in library.names() and not entry.folder.exists()
    with pytest.raises(LibraryError, match="it has: " + ", ".join(library.names())):
        library.remove(entry.name)


def test_name_collisions_and_unsafe_names(voice_files):
    f = voice_files[0]
    a = library.import_model(f)
    b = library.import_model(f)
    c = library.import_model(f, name=f.stem.upper())  # case-insensitive file systems collide too
    assert (a.name, b.name, c.name) == (f.stem, f"{f.stem} (2)", f"{f.stem.upper()} (3)")
    d = library.import_model(f, name='a/b:c*?"<>|.')
    assert d.name == "a_b_c______" and d.folder.parent == library.library_dir()
    for bad in ("..", " . "):
        with pytest.raises(LibraryError, match="cannot be used as a voice name"):
            library.import_model(f, name=bad)
    assert len(library.list_models()) == 4


def test_an_index_that_does_not_fit_is_refused_and_nothing_is_added(voice_files, index_file):
    v1 = by_version(voice_files, "v1")
    width = read_index_info(index_file).dim
    with pytest.raises(LibraryError, match=f"holds {width}-d features but the model is v1"):
        library.import_model(v1, index=index_file)
    assert library.list_models() == []
    entry = library.import_model(v1)
    with pytest.raises(LibraryError, match="v1"):
        library.set_index(entry.name, index_file)
    v2 = library.import_model(by_version(voice_files, "v2"))
    assert library.set_index(v2.name, index_file).has_index
    assert not library.set_index(v2.name, None).has_index


# ---- damaged, foreign and unsafe files --------------------------------------------------------
def _place(path: Path, name: str) -> Path:
    """Put a file into the library by hand, as a user copying into the models folder would."""
    folder = library.library_dir() / name
    folder.mkdir()
    return shutil.copyfile(path, folder / path.name) if path.exists() else folder


def test_damaged_files_are_listed_with_an_error_and_refused_on_import(voice_files, tmp_path):
    good = voice_files[0]
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")

    library.import_model(good)
    for bad in (truncated, garbage, empty):
        _place(bad, bad.stem)
    two = _place(good, "two models")
    shutil.copyfile(good, two.parent / "other.pth")
    _place(tmp_path / "nothing", "no model")

    listed = {m.name: m for m in library.list_models()}
    assert listed[good.stem].ok
    assert "damaged or truncated" in listed["truncated"].error
    assert "not an ONNX model" in listed["garbage"].error or "truncated" in listed["garbage"].error
    assert "empty" in listed["empty"].error
    assert "several models" in listed["two models"].error
    assert "no .pth or .onnx" in listed["no model"].error

    before = sorted(p.name for p in library.library_dir().iterdir())
    for bad in (truncated, garbage, empty):
        with pytest.raises(LibraryError, match="was not imported"):
            library.import_model(bad)
    assert sorted(p.name for p in library.library_dir().iterdir()) == before


def test_flipped_bytes_in_the_weights_are_caught_by_the_zip_checksums(voice_files, tmp_path):
    good = voice_files[0]
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)  # the largest tensor's bytes
    # the member's bytes follow its local header: 30 bytes, then name and extra field, whose
    # lengths the header holds at offsets 26 and 28
    h = info.header_offset
    name_len = int.from_bytes(data[h + 26 : h + 28], "little")
    extra_len = int.from_bytes(data[h + 28 : h + 30], "little")
    start = h + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    damaged = tmp_path / "flipped.pth"
    damaged.write_bytes(bytes(data))
    assert read_model_info(damaged).ok  # the header is intact: listing cannot tell
    with pytest.raises(LibraryError, match="damaged"):
        library.import_model(damaged)
    assert library.list_models() == []
    library.import_model(good)  # negative control: the intact file passes the same check


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    evil = unsafe_pth(tmp_path / "evil.pth", marker)
    info = read_model_info(evil)
    assert "os.system" in info.error or "posix.system" in info.error
    assert "not loaded" in info.error and not marker.exists()
    with pytest.raises(LibraryError):
        library.import_model(evil)
    assert not marker.exists()
    # negative control: the same payload does run when unpickled normally
    pickle.loads(pickle.dumps(CommandPayload(marker)))
    assert marker.exists()


def test_foreign_torch_files_say_what_they_are(tmp_path, voice_files):
    torch = pytest.importorskip("torch")
    real = torch.load(voice_files[0], map_location="cpu", weights_only=True)
    cases = {
        "training checkpoint": {"model": real["weight"], "optimizer": {}, "iteration": 3},
        "no 'weight' table": real["weight"],
        "says v2 but its content layer": {
            **real,
            "version": "v1" if real["version"] == "v2" else "v2",
        },
        "RefineGAN vocoder": {**real, "vocoder": "RefineGAN"},
        "does not fit its sample rate": {
            **real,
            "config": real["config"][:-1] + [real["config"][-1] + 1000],
        },
    }
    for why, obj in cases.items():
        path = tmp_path / f"{len(why)}.pth"
        torch.save(obj, path)
        assert why in read_model_info(path).error, why
    # Applio's extra keys are read and shown; a HiFi-GAN Applio voice is fine
    applio = {
        **real,
        "vocoder": "HiFi-GAN",
        "model_name": "Nolwenn",
        "author": "someone",
        "epoch": 300,
        "embedder_model": "contentvec",
        "speakers_id": 1,
        "f0": True,
    }
    path = tmp_path / "applio.pth"
    torch.save(applio, path)
    info = read_model_info(path)
    assert (
        info.ok and ("model name", "Nolwenn") in info.details and ("epoch", "300") in info.details
    )
    torch.save({**applio, "embedder_model": "japanese-hubert-base"}, path)
    assert read_model_info(path).ok and "japanese-hubert-base" in read_model_info(path).warnings[0]


# ---- .onnx ---------------------------------------------------------------------------------------
def write_onnx(
    path: Path,
    *,
    dim: int,
    rates: list[int],
    f0: bool,
    metadata: dict | None,
    layout: str = "w-okada",
) -> Path:
    """A small graph with an RVC export's inputs and an upsampling chain of ConvTranspose nodes
    (1 channel, kernel = 2 x stride), saved with the onnx package."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    content = "feats" if layout == "w-okada" else "phone"
    inputs = [helper.make_tensor_value_info(content, TensorProto.FLOAT, [1, "T", dim])]
    if f0:
        inputs += [
            helper.make_tensor_value_info("pitch", TensorProto.INT64, [1, "T"]),
            helper.make_tensor_value_info("pitchf", TensorProto.FLOAT, [1, "T"]),
        ]
    inputs.append(
        helper.make_tensor_value_info(
            "sid" if layout == "w-okada" else "ds", TensorProto.INT64, [1]
        )
    )
    nodes = [
        helper.make_node("ReduceMean", [content], ["m"], axes=[2], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "ax"], ["x0"]),
    ]
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "ax")]
    for i, r in enumerate(rates):
        inits.append(numpy_helper.from_array(np.full((1, 1, 2 * r), 0.5, np.float32), f"w{i}"))
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                [f"x{i}", f"w{i}"],
                [f"x{i + 1}"],
                strides=[r],
                kernel_shape=[2 * r],
                pads=[r // 2, r - r // 2],
            )
        )
    nodes.append(helper.make_node("Identity", [f"x{len(rates)}"], ["audio"]))
    out = helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, "S"])
    graph = helper.make_graph(nodes, "rvc", inputs, [out], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch"
    )
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "metadata", json.dumps(metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def w_okada_metadata(info) -> dict:
    return {
        "application": "VC_CLIENT",
        "version": "2.1",
        "modelType": "pyTorchRVCv2",
        "samplingRate": info.sample_rate,
        "f0": info.f0,
        "embChannels": info.feature_dim,
        "embedder": "hubert_base",
        "embOutputLayer": 12 if info.feature_dim == 768 else 9,
        "useFinalProj": info.feature_dim == 256,
    }


def test_onnx_models_in_the_w_okada_and_rvc_layouts(voice_files, tmp_path, index_file):
    pth = by_version(voice_files, "v2")
    ref = read_model_info(pth)
    rates = torch_file.read(pth).obj["config"][12]
    meta = w_okada_metadata(ref)
    wokada = write_onnx(
        tmp_path / "wokada 声.onnx", dim=ref.feature_dim, rates=rates, f0=True, metadata=meta
    )
    own = write_onnx(
        tmp_path / "own.onnx",
        dim=ref.feature_dim,
        rates=rates,
        f0=True,
        metadata=None,
        layout="rvc",
    )
    for path in (wokada, own):
        info = read_model_info(path)
        assert info.ok, info.error
        assert (info.kind, info.version, info.feature_dim, info.sample_rate, info.f0) == (
            "onnx",
            ref.version,
            ref.feature_dim,
            ref.sample_rate,
            ref.f0,
        )
    assert ("modelType", "pyTorchRVCv2") in read_model_info(wokada).details

    entry = library.import_model(wokada, index=index_file)
    assert entry.name == "wokada 声" and entry.ok and entry.info.kind == "onnx" and entry.has_index

    # metadata that contradicts the graph, a graph without pitch inputs, truncation
    wrong = write_onnx(
        tmp_path / "wrong.onnx",
        dim=ref.feature_dim,
        rates=rates,
        f0=True,
        metadata={**meta, "samplingRate": ref.sample_rate // 2},
    )
    assert "metadata says" in read_model_info(wrong).error
    nof0 = write_onnx(
        tmp_path / "nof0.onnx",
        dim=ref.feature_dim,
        rates=rates,
        f0=False,
        metadata={**meta, "f0": False},
    )
    assert read_model_info(nof0).ok and read_model_info(nof0).f0 is False
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(wokada.read_bytes()[:-7])
    assert "truncated" in read_model_info(cut).error or "damaged" in read_model_info(cut).error


# ---- a full disk ---------------------------------------------------------------------------------
IMPORT_SNIPPET = """
import json, sys
from voicegui.voices.rvc import library
try:
    library.import_model(sys.argv[1])
    print(json.dumps({"ok": True}))
except library.LibraryError as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
root = library.library_dir()
print(json.dumps(sorted(p.name for p in root.iterdir())))
"""


def _run_import(model: Path, home: Path, prefix: list[str] = (), preexec=None) -> tuple[dict, list]:
    env = {**os.environ, "VOICEGUI_HOME": str(home), "PYTHONPATH": str(REPO)}
    cmd = [*prefix, sys.executable, "-c", IMPORT_SNIPPET, str(model)]
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=120, preexec_fn=preexec
    )
    assert done.returncode == 0, done.stderr
    result, listing = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    return result, listing


def test_a_disk_without_room_is_refused_before_writing(voice_files, tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small private tmpfs")
    model = voice_files[0]
    home = tmp_path / "small-disk"
    home.mkdir()
    size_kb = model.stat().st_size // 2048  # half the model's size
    script = f'mount -t tmpfs -o size={size_kb}k tmpfs "$0" && exec "$@"'
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, str(home), "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mounts here: {probe.stderr.decode().strip()}")
    result, listing = _run_import(model, home, ["unshare", "-rm", "sh", "-c", script, str(home)])
    assert not result["ok"] and "Not enough disk space" in result["error"]
    assert listing == []


def test_a_write_that_fails_half_way_leaves_nothing(voice_files, tmp_path):
    """The file-size limit stops the copy in the middle (EFBIG, as a full disk does with
    ENOSPC): the import says so and no half-written voice or leftover remains."""
    import resource
    import signal

    model = voice_files[0]
    limit = model.stat().st_size // 2

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result, listing = _run_import(model, tmp_path / "home", preexec=small_files)
    assert not result["ok"] and "nothing was imported" in result["error"]
    assert listing == []
    # negative control: without the limit the same import succeeds
    result, listing = _run_import(model, tmp_path / "home")
    assert result["ok"] and listing == [model.stem]


# ---- shared weights ------------------------------------------------------------------------------
@pytest.mark.slow
def test_models_import_rvc_from_an_assets_folder(rvc_assets, capsys):
    assert set(shared_weights.status().values()) == {"missing"}
    assert len(shared_weights.missing()) == 2
    with pytest.raises(modelhub.ModelError, match="models download rvc"):
        shared_weights.installed_files()

    assert main(["models", "import", "rvc", str(rvc_assets)]) == 0
    assert modelhub.installed("rvc") and shared_weights.missing() == []
    w = shared_weights.installed_files()
    assert w.hubert_format == "transformers" and w.hubert.name == shared_weights.HUBERT_FOLDER
    for name in ("config.json", "pytorch_model.bin"):
        assert sha256(w.hubert / name) == sha256(rvc_assets / "hubert_base" / name)
    assert sha256(w.rmvpe) == sha256(rvc_assets / "rmvpe" / "rmvpe.pt")
    manifest = modelhub.manifest("rvc")
    published = {f.local_name: f.sha256 for f in modelhub.entry("rvc").files}
    assert manifest["rmvpe.pt"]["published"] == str(sha256(w.rmvpe) == published["rmvpe.pt"])
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert "rvc: RVC shared weights" in capsys.readouterr().out

    w.rmvpe.write_bytes(b"truncated")  # damaged after the install
    assert shared_weights.status()["rmvpe.pt"] == "changed"
    assert "damaged" in shared_weights.missing()[0] and not modelhub.installed("rvc")


def _fairseq_checkpoint(path: Path) -> None:
    """A fairseq-era hubert_base.pt: training arguments (argparse) around a state dict with
    fairseq's key names (small tensors: only names are checked on import)."""
    torch = pytest.importorskip("torch")
    names = [
        "feature_extractor.conv_layers.0.0.weight",
        "encoder.layers.0.self_attn.k_proj.weight",
        "encoder.layers.11.final_layer_norm.bias",
        "final_proj.weight",
        "label_embs_concat",
    ]
    state = {n: torch.zeros(2, 2) for n in names}
    torch.save(
        {
            "args": argparse.Namespace(arch="hubert", layers=12),
            "cfg": None,
            "model": state,
            "optimizer_history": [{"criterion_name": "HubertCriterion"}],
        },
        path,
    )


@pytest.mark.slow
def test_import_the_fairseq_hubert_and_refuse_wrong_files(rvc_assets, tmp_path):
    folder = tmp_path / "RVC installé" / "assets"
    (folder / "hubert").mkdir(parents=True)
    (folder / "rmvpe").mkdir()
    _fairseq_checkpoint(folder / "hubert" / "hubert_base.pt")

    # only the content encoder there and nothing installed: says what lacks, copies nothing
    with pytest.raises(modelhub.ModelError, match="rmvpe.pt"):
        modelhub.import_dir("rvc", folder)
    assert not (shared_weights.folder() / "hubert_base.pt").exists()

    # a voice model saved under the pitch model's name is recognised as not RMVPE
    shutil.copyfile(next((rvc_assets / "weights").glob("*.pth")), folder / "rmvpe" / "rmvpe.pt")
    with pytest.raises(modelhub.ModelError, match="not an RMVPE model"):
        modelhub.import_dir("rvc", folder)
    os.unlink(folder / "rmvpe" / "rmvpe.pt")
    os.symlink(rvc_assets / "rmvpe" / "rmvpe.pt", folder / "rmvpe" / "rmvpe.pt")

    # first the transformers layout, then the fairseq file replaces it (one layout at a time)
    modelhub.import_dir("rvc", rvc_assets)
    modelhub.import_dir("rvc", folder)
    w = shared_weights.installed_files()
    assert w.hubert_format == "fairseq" and w.hubert.name == "hubert_base.pt"
    assert not (shared_weights.folder() / shared_weights.HUBERT_FOLDER).exists()

    # the strict reader refuses the training arguments; the lenient one turns them inert
    with pytest.raises(torch_file.TorchFileError, match="argparse.Namespace"):
        torch_file.read(w.hubert, strict=True)
    assert "argparse.Namespace" in torch_file.read(w.hubert, strict=False).opaque


# ---- settings, catalog, command line ----------------------------------------------------------
def test_rvc_settings_round_trip_and_validation():
    s = with_changes(
        Settings(),
        voice={
            "voice": "rvc",
            "model": "Alice",
            "index": "/x/a.index",
            "f0_method": "fcpe",
            "index_rate": 0.3,
            "protect": 0.2,
        },
    )
    assert Settings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    for bad in ({"f0_method": "crepe"}, {"index_rate": 1.5}, {"protect": 0.6}):
        with pytest.raises(SettingsError):
            with_changes(s, voice=bad)
    a = VoiceSettings(voice="rvc", model="a")
    for change in ({"model": "b"}, {"index": "i"}, {"f0_method": "fcpe"}):
        assert voice_identity(a) != voice_identity(VoiceSettings(**{**a.__dict__, **change}))
    assert voice_identity(a) == voice_identity(VoiceSettings(**{**a.__dict__, "pitch": 5.0}))


def test_cli_flags_resolve_the_model(voice_files, index_file, capsys, tmp_path, monkeypatch):
    from voicegui.cli import build_parser

    entry = library.import_model(by_version(voice_files, "v2"), index=index_file)
    args = build_parser().parse_args(
        [
            "convert",
            "in.wav",
            "out.wav",
            "--voice",
            "rvc",
            "--model",
            entry.name,
            "--f0",
            "fcpe",
            "--index-rate",
            "0.25",
            "--protect",
            "0.4",
        ]
    )
    v = settings_from_args(args).voice
    assert (v.voice, v.model, v.index, v.f0_method, v.index_rate, v.protect) == (
        "rvc",
        entry.name,
        "",
        "fcpe",
        0.25,
        0.4,
    )
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(voice_files[0], tmp_path / "here.pth")
    args = build_parser().parse_args(["bench", "--voice", "rvc", "--model", "here.pth"])
    assert settings_from_args(args).voice.model == str(tmp_path / "here.pth")

    assert main(["convert", "in.wav", "out.wav", "--voice", "rvc", "--model", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "no RVC voice 'nobody'" in err and entry.name in err
    assert main(["live", "--voice", "rvc", "--seconds", "0"]) == 2
    assert "no RVC voice model chosen" in capsys.readouterr().err


def test_rvc_availability_says_what_is_missing(rvc_assets, voice_files):
    from voicegui.voices.base import VoiceError
    from voicegui.voices.registry import create_voice

    engine = importlib.util.find_spec("voicegui.voices.rvc.voice") is not None
    ok, why = voice_available("rvc")
    assert not ok
    if not engine:
        assert "RVC voice engine is not part of this installation" in why
        with pytest.raises(VoiceError, match="not part of this installation"):
            create_voice(VoiceSettings(voice="rvc", model="x"))
        return
    assert "shared weights are not installed" in why and "models download rvc" in why
    modelhub.import_dir("rvc", rvc_assets)
    assert voice_available("rvc") == (True, "")
    ok, why = voice_available("rvc", VoiceSettings(voice="rvc"))
    assert not ok and "no RVC voice model chosen" in why
    entry = library.import_model(voice_files[0])
    assert voice_available("rvc", VoiceSettings(voice="rvc", model=entry.name)) == (True, "")
