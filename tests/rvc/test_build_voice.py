"""The RVC voice as the app, `convert`, `bench` and `live` build it (build_rvc_voice: library
name or path, installed shared weights, pitch estimator, backend, precision), through the engine
on a virtual clock with the kit's models and real speech; its errors; `voicegui convert`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from tests.rvc.installed import kit_index, kit_model
from voicegui.cli import main
from voicegui.engine.metrics import Metrics
from voicegui.engine.offline import convert_array
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import EngineSettings, Settings, VoiceSettings, with_changes
from voicegui.voices.base import VoiceError
from voicegui.voices.registry import create_voice
from voicegui.voices.rvc import library
from voicegui.voices.rvc.f0 import pitch_realtime
from voicegui.voices.rvc.voice import build_rvc_voice
from voicegui.voices.rvc.yin import Yin

ENGINE = EngineSettings(
    block_time=0.2,
    crossfade_time=0.03,
    extra_left_time=0.3,
    extra_right_time=0.0,
    gate_threshold_db=-90.0,  # every block through the voice
)


def rvc_settings(model: str, **voice) -> Settings:
    v = VoiceSettings(voice="rvc", model=model, f0_method="yin", precision="fp32", **voice)
    return Settings(engine=ENGINE, voice=v)


# ---- errors --------------------------------------------------------------------------------------
def test_without_shared_weights_the_error_says_how_to_get_them(rvc_assets):
    s = rvc_settings(str(kit_model(rvc_assets)))
    with pytest.raises(VoiceError) as err:
        build_rvc_voice(s.voice)
    assert "voicegui models download rvc" in str(err.value)
    assert "voicegui models import rvc DIR" in str(err.value)
    with pytest.raises(VoiceError, match="shared weights"):
        create_voice(s.voice)


def test_unknown_or_missing_model_lists_the_library(rvc_home, rvc_assets):
    library.import_model(kit_model(rvc_assets), name="Ålice")
    for name, message in (("Nobody", "no RVC voice 'Nobody'"), ("", "no RVC voice model chosen")):
        with pytest.raises(VoiceError) as err:
            build_rvc_voice(rvc_settings(name).voice)
        assert message in str(err.value) and "Ålice" in str(err.value)


def test_damaged_model_and_unfitting_index_are_named(rvc_home, rvc_assets, tmp_path):
    src = kit_model(rvc_assets)
    cut = tmp_path / "cut voice.pth"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])  # an interrupted download
    with pytest.raises(VoiceError, match="cut voice.pth"):
        build_rvc_voice(rvc_settings(str(cut)).voice)
    v1 = kit_model(rvc_assets, "v1")
    with pytest.raises(VoiceError, match=kit_index(rvc_assets).name):
        build_rvc_voice(rvc_settings(str(v1), index=str(kit_index(rvc_assets))).voice)
    # the same model whole, and with the index it fits, builds
    voice = build_rvc_voice(rvc_settings(str(src), index=str(kit_index(rvc_assets))).voice)
    assert voice.stream.index is not None and voice.provider == "CPU (torch, fp32)"


# ---- through the engine --------------------------------------------------------------------------
@pytest.mark.slow
def test_library_voice_through_the_engine(rvc_home, rvc_assets, speech_48k):
    """A library voice (non-ASCII name, with its index) at a device rate other than the model's:
    output as long as the input, finite, the latency the framing says, speech out."""
    model = kit_model(rvc_assets, "v1")  # a 40 kHz model: the engine resamples 48 kHz to it
    library.import_model(model, name="Voix d'été 夏")
    s = rvc_settings("Voix d'été 夏", index_rate=0.0)
    voice = create_voice(s.voice)
    assert voice.sample_rate != 48000
    x = speech_48k[: 48000 * 2]
    y, proc = convert_array(x, 48000, voice, s)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert proc.voice_errors == 0, proc.last_error
    # block + right context (the voice adds none) + crossfade + the SOLA search's nominal half,
    # each rounded to the voice's samples as the engine's geometry does, + the two streaming
    # resamplers between the device's 48 kHz and the model's rate
    g, lat = proc.geom, proc.latency()
    sola = (g.crossfade + g.search - g.search // 2) / g.voice_rate
    expected = g.block / g.voice_rate + g.right / g.voice_rate + sola + lat.resampler
    assert lat.resampler > 0 and lat.lookahead == 0
    assert lat.algorithmic == pytest.approx(expected, abs=1e-9)
    lag = round(expected * 48000)
    rms = np.sqrt(np.mean(y[lag:] ** 2))
    assert rms > 0.01 * np.sqrt(np.mean(x**2))  # it speaks (random weights: any loudness)
    profile = voice.profile()
    assert {"content", "f0", "synth"} <= set(profile)
    assert profile["synth"]["calls"] == proc.metrics.count


@pytest.mark.slow
def test_live_pitch_and_index_rate_apply_on_the_next_block(rvc_home, rvc_assets, speech_48k):
    """Settings sent to the engine between two blocks: the next block's new pitch frames are
    YIN's f0 of its segment shifted by the new key (the cached frames keep the old key), and its
    features from skip_head/2 on are the index's vectors (index rate 1)."""
    model, index = kit_model(rvc_assets), kit_index(rvc_assets)
    s = rvc_settings(str(model), index=str(index), index_rate=0.0, pitch=0.0)
    voice = build_rvc_voice(s.voice)
    rate = voice.sample_rate
    proc = BlockProcessor(voice, s, rate, Metrics())  # the device runs at the model's rate
    x = soxr.resample(speech_48k, 48000, rate).astype(np.float32)
    n = proc.block_dev
    for k in range(4):  # speech fills the window
        proc.process(x[k * n : (k + 1) * n])
    before = voice.stream.trace
    cached = voice.stream.cache.pitchf.clone()
    key = 7.0
    proc.request(with_changes(s, voice={"pitch": key, "index_rate": 1.0}))
    out = proc.process(x[4 * n : 5 * n])
    after = voice.stream.trace
    assert out.shape == (n,) and np.all(np.isfinite(out))
    assert proc.voice_errors == 0, proc.last_error
    plan = voice._plan
    seg = after.ring16k[-plan.f0_samples(rmvpe_grid=False) :].numpy()
    _, f0 = pitch_realtime(Yin().f0(seg), key)
    _, f0_old_key = pitch_realtime(Yin().f0(seg), 0.0)
    assert not torch.equal(f0, f0_old_key)  # the key matters for this segment
    fresh = f0.shape[0] - 4  # the segment's frames 3..-1 entered the cache
    cache = voice.stream.cache.pitchf
    assert torch.equal(cache[-fresh:], f0[3:-1])
    # the frames cached from the previous block moved by one block and kept the old key
    shift = plan.block16k // 160
    assert torch.equal(cache[-fresh - shift : -fresh], cached[-fresh : -fresh + shift])
    # index rate 1: from skip_head/2 on, r * 1 + f * 0 is the retrieved vector exactly
    start = plan.skip_head // 2
    raw = voice.stream.content(after.ring16k[None])[0]
    raw = torch.cat([raw, raw[-1:]])
    idx = voice.stream.index
    retrieved = idx.retrieve(*idx.search(raw[start:].numpy()))
    assert np.array_equal(after.feats[0, start:].numpy(), retrieved)
    assert torch.equal(after.feats[0, :start], raw[:start])
    raw_before = voice.stream.content(before.ring16k[None])[0]
    assert torch.equal(before.feats[0], torch.cat([raw_before, raw_before[-1:]]))  # rate 0


def test_live_update_refuses_bad_values_and_keeps_the_old_ones(rvc_home, rvc_assets):
    voice = build_rvc_voice(rvc_settings(str(kit_model(rvc_assets))).voice)
    with pytest.raises(VoiceError, match="index rate"):
        voice.update({"index_rate": 2.0})
    voice.update({"pitch": 3.0, "protect": 0.2})
    voice.convert(np.zeros(voice.sample_rate // 2, np.float32), _info(voice.sample_rate))
    p = voice.params
    assert (p.pitch, p.protect, p.index_rate) == (3.0, 0.2, VoiceSettings().index_rate)


def _info(rate: int):
    from voicegui.voices.base import BlockInfo

    zc = rate // 100
    return BlockInfo(0, 10 * zc, rate // 2 - 10 * zc, 0, 5 * zc)


# ---- command line --------------------------------------------------------------------------------
@pytest.mark.slow
def test_convert_cli_with_a_model_under_a_non_ascii_path(
    rvc_home, rvc_assets, speech_48k, tmp_path
):
    folder = tmp_path / "modèles 声"
    folder.mkdir()
    model = shutil.copy(kit_model(rvc_assets), folder / "voix ünï.pth")
    src = folder / "entrée.wav"
    sf.write(str(src), speech_48k[: 48000 * 3 // 2], 48000)
    dst = folder / "sortie 出力.wav"
    args = ["convert", str(src), str(dst), "--voice", "rvc", "--model", str(model)]
    args += ["--f0", "yin", "--index-rate", "0", "--block-time", "0.2", "--extra-left", "0.3"]
    assert main([*args, "--precision", "fp32"]) == 0
    y, sr = sf.read(str(dst), dtype="float32")
    x, _ = sf.read(str(src), dtype="float32")
    assert sr == 48000 and y.shape == x.shape and np.all(np.isfinite(y))
    assert np.abs(y).max() > 0.01


def test_convert_cli_unknown_model_is_a_clear_error(rvc_home, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(str(src), np.zeros(4800, np.float32), 48000)
    args = ["convert", str(src), str(tmp_path / "out.wav"), "--voice", "rvc", "--model", "Nobody"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no RVC voice 'Nobody'" in err and not (tmp_path / "out.wav").exists()


@pytest.mark.slow
def test_bench_reports_compute_stages_and_latency(rvc_home, rvc_assets, capsys):
    model = kit_model(rvc_assets)
    args = ["bench", "--voice", "rvc", "--model", str(model), "--f0", "yin", "--seconds", "1"]
    assert main([*args, "--block-time", "0.2", "--extra-left", "0.3", "--precision", "fp32"]) == 0
    result = json.loads(capsys.readouterr().out)
    run = result["voice_run"]
    assert run["voice"] == "rvc" and run["voice_errors"] == 0
    assert run["provider"] == "CPU (torch, fp32)"
    assert run["blocks"] == 5 and run["stages"]["synth"]["calls"] == 5
    assert run["rtf_mean"] == pytest.approx(run["compute"]["mean_ms"] / 200.0)
    assert run["latency"]["block_ms"] == pytest.approx(200.0)


def test_cli_library_voice_brings_its_default_pitch(rvc_home, rvc_assets):
    from voicegui.cli import build_parser, settings_from_args

    library.import_model(kit_model(rvc_assets), name="Bob", pitch=-7.0)

    def settings(*extra):
        args = build_parser().parse_args(["convert", "a.wav", "b.wav", "--voice", "rvc", *extra])
        return settings_from_args(args).voice

    assert settings("--model", "Bob").pitch == -7.0
    assert settings("--model", "Bob", "--pitch", "3").pitch == 3.0  # the flag wins
    by_path = settings("--model", str(kit_model(rvc_assets)))
    assert by_path.pitch == 0.0 and by_path.model == str(kit_model(rvc_assets).resolve())
    # a preset that names the voice keeps its own pitch
    from voicegui.presets import PresetStore

    PresetStore().save("Mine", Settings(voice=VoiceSettings(voice="rvc", model="Bob", pitch=2.0)))
    assert settings("--preset", "Mine").pitch == 2.0


def test_live_and_the_loopback_bench_get_the_voice_built_in_the_audio_host(rvc_home, rvc_assets):
    """What `live` and `bench --loopback` ask the audio host for: an RVC voice is built (its
    weights loaded, the compute devices it can use probed), the built-in voice created."""
    from voicegui.engine.client import AudioHost

    library.import_model(kit_model(rvc_assets), name="kit voice")
    host = AudioHost().start()
    try:
        host.ensure()
        rvc = host.voice_for(rvc_settings("kit voice").voice)
        dsp = host.voice_for(VoiceSettings(voice="dsp"))
        assert rvc.valid and dsp.valid and rvc.id != dsp.id
        assert "cpu" in rvc.compute_devices  # said only by a voice that was built
        assert dsp.compute_devices == ()
    finally:
        host.close()
