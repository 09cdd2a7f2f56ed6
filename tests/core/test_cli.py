"""`voicegui convert` and `voicegui bench` with good and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from voicegui.cli import main

SR = 44100


def write(path, data, sr=SR, subtype=None):
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def tone(seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_convert_keeps_length_rate_and_channels_with_non_ascii_paths(tmp_path, capsys):
    folder = tmp_path / "ünïcödé 声音"
    folder.mkdir()
    stereo = np.stack([tone(), tone() * 0.5], axis=1)
    src = write(folder / "entrée.wav", stereo)
    dst = folder / "sortie 出力.wav"
    assert main(["convert", str(src), str(dst), "--pitch", "5", "--block-time", "0.02"]) == 0
    report = json.loads(capsys.readouterr().out)
    y, sr = sf.read(str(dst), always_2d=True)
    assert sr == SR and y.shape == stereo.shape
    assert report["latency"]["block_ms"] == pytest.approx(20.0, abs=0.5)
    assert np.abs(y).max() > 0.05  # something was converted, not silence


def test_convert_reads_8bit_and_mono(tmp_path, capsys):
    src = write(tmp_path / "eight.wav", tone(), subtype="PCM_U8")
    dst = tmp_path / "out.wav"
    assert main(["convert", str(src), str(dst), "--voice", "passthrough"]) == 0
    y, _ = sf.read(str(dst))
    assert y.ndim == 1 and len(y) == SR


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: write(p, np.zeros(0, np.float32)), "is empty"),
        (lambda p: write(p, np.full(1000, np.nan, np.float32), subtype="FLOAT"), "NaN"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk") and p, "cannot read"),
        (lambda p: p, "not found"),
    ],
)
def test_convert_rejects_bad_input_with_a_clear_message(tmp_path, capsys, make, message):
    src = tmp_path / "bad.wav"
    make(src)
    dst = tmp_path / "out.wav"
    assert main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not dst.exists()


def test_convert_rejects_out_of_range_settings(tmp_path, capsys):
    src = write(tmp_path / "in.wav", tone())
    assert main(["convert", str(src), str(tmp_path / "o.wav"), "--pitch", "40"]) == 2
    assert "Pitch must be between" in capsys.readouterr().err


def test_bench_prints_json_with_percentiles_and_latency(capsys):
    assert main(["bench", "--seconds", "1", "--block-time", "0.01"]) == 0
    result = json.loads(capsys.readouterr().out)
    run = result["voice_run"]
    assert run["voice"] == "dsp" and run["blocks"] == 100
    assert set(run["compute"]) >= {"p50_ms", "p95_ms", "p99_ms", "max_ms"}
    assert run["latency"]["algorithmic_ms"] == pytest.approx(22.0, abs=0.1)
    assert result["passthrough_run"]["voice"] == "passthrough"
    assert result["engine_overhead_p99_ms"] > 0
