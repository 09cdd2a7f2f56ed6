"""create_seedvc_voice with backend 'onnx': the installed model on onnxruntime."""

from __future__ import annotations

import numpy as np

from voicegui.settings import VoiceSettings


class _Entry:
    def __init__(self, dit_name: str) -> None:
        self._dit = dit_name

    def file(self, role: str):
        class F:
            local_name = self._dit

        return F()


def test_create_seedvc_voice_onnx_backend(
    model_files, onnx_cache, ort_int8, kit_inputs, tmp_path, monkeypatch
):
    from voicegui import modelhub
    from voicegui.voices.onnx import export
    from voicegui.voices.seedvc.voice import create_seedvc_voice

    folder = tmp_path / "seedvc"
    folder.mkdir()
    for key in ("dit", "hift", "campplus"):
        (folder / model_files[key].name).symlink_to(model_files[key])
    for f in model_files["content_dir"].iterdir():
        (folder / f.name).symlink_to(f)
    monkeypatch.setattr(modelhub, "seedvc_installed", lambda: True)
    monkeypatch.setattr(modelhub, "model_dir", lambda name: folder)
    monkeypatch.setattr(modelhub, "entry", lambda name: _Entry(model_files["dit"].name))
    monkeypatch.setattr(export, "default_root", lambda: onnx_cache)  # the session's exports
    before = sum(export.EXPORT_COUNTS.values())
    voice = create_seedvc_voice(
        VoiceSettings(voice="seedvc", backend="onnx", device="cpu", diffusion_steps=2)
    )
    assert sum(export.EXPORT_COUNTS.values()) == before  # same files: the cache is reused
    assert voice.provider == "CPU (onnxruntime, int8)"  # 'auto' precision on the CPU
    assert voice.steps == 2
    from voicegui.voices.base import BlockInfo

    voice.prepare(kit_inputs["ref_wav_22k"][:22050], 22050)
    window = np.tile(kit_inputs["stream_in_22k"], 2)[: 2205 + 11025 + 441 + 441]
    out = voice.convert(window, BlockInfo(0, 2205, 11025 + 441, 441, 441))
    assert out.shape == (2205 + 441,) and np.all(np.isfinite(out))
