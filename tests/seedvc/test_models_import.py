"""Catalog parsing, `voicegui models import` from a folder, and the installed voice. No network."""

from __future__ import annotations

import json

import pytest

from tests.seedvc.conftest import write_published_layout
from voicegui import modelhub
from voicegui.cli import main
from voicegui.settings import VoiceSettings
from voicegui.voices.registry import create_voice, voice_available


def test_catalog_names_every_seedvc_file():
    catalog = modelhub.load_catalog()
    seedvc = catalog["seedvc"]
    roles = {f.role: f for f in seedvc.files}
    assert roles["dit"].repo == "Plachta/Seed-VC"
    assert roles["dit"].filename == "DiT_uvit_tat_xlsr_ema.pth"
    assert roles["vocoder"].repo == "FunAudioLLM/CosyVoice-300M"
    assert roles["speaker"].filename == "campplus_cn_common.bin"
    assert roles["content"].repo == "facebook/wav2vec2-xls-r-300m"
    assert all(f.revision for f in seedvc.files) and seedvc.licence


def test_malformed_catalog_is_reported(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text("[x]\nfiles = [{ role = 'a', nope = 1 }]\n", encoding="utf-8")
    with pytest.raises(modelhub.ModelError, match="malformed"):
        modelhub.load_catalog(bad)


@pytest.fixture
def offline_folder(kit_checkpoints, tmp_path):
    """Seed-VC's files under their published names, in a nested non-ASCII folder."""
    write_published_layout(kit_checkpoints, tmp_path / "téléchargés" / "nested")
    return tmp_path / "téléchargés"


def test_models_import_list_use_and_remove(offline_folder, capsys, kit_inputs):
    assert not modelhub.seedvc_installed()
    ok, why = voice_available("seedvc")
    assert not ok and "models download seedvc" in why

    assert main(["models", "import", "seedvc", str(offline_folder)]) == 0
    assert modelhub.seedvc_installed()
    manifest = json.loads((modelhub.model_dir("seedvc") / "manifest.json").read_text())
    assert len(manifest["hift.pt"]["sha256"]) == 64
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert "[installed]" in capsys.readouterr().out

    voice = create_voice(
        VoiceSettings(voice="seedvc", diffusion_steps=2, cfg_rate=0.0, max_prompt_time=1.0)
    )
    voice.prepare(kit_inputs["ref_wav_22k"], 22050)
    assert voice.provider.startswith("CPU")

    # a damaged file is noticed
    (modelhub.model_dir("seedvc") / "hift.pt").write_bytes(b"truncated")
    assert modelhub.status("seedvc")["hift.pt"] == "changed"
    assert not modelhub.seedvc_installed()

    assert main(["models", "remove", "seedvc"]) == 0
    assert not modelhub.model_dir("seedvc").exists()


def test_import_from_an_incomplete_folder_names_what_is_missing(tmp_path, capsys):
    (tmp_path / "hift.pt").write_bytes(b"x")
    assert main(["models", "import", "seedvc", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "DiT_uvit_tat_xlsr_ema.pth" in err and "pytorch_model.bin" in err


def test_corrupt_checkpoint_gives_a_clear_error(offline_folder):
    from voicegui.voices.seedvc.checkpoints import CheckpointError

    assert main(["models", "import", "seedvc", str(offline_folder)]) == 0
    path = modelhub.model_dir("seedvc") / "DiT_uvit_tat_xlsr_ema.pth"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    # the manifest notices the size change first; loading directly says the file is truncated
    assert not modelhub.seedvc_installed()
    from voicegui.voices.seedvc.cfm import load_dit_checkpoint

    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_dit_checkpoint(path)
