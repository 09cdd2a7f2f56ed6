"""Input noise suppression (RNNoise): the library, the streaming stage, its measured effect on
noisy speech, its place in the engine (delay, alignment, bit-identical when off, live toggling)
and the command line.

Floors. A change of broadband level alone (what a gate or a gain does) improves neither SI-SDR nor
the masked SNR: both are exactly 0 for it, and the mix=0 control below measures exactly 0 too. A
suppressor must take off clearly more noise than speech: 3 dB, half the noise power, is the
floor asserted (well above the last-bit differences between CPUs, which move these figures by
less than 0.1 dB). Measured figures are written to test-output/denoise_measurements.json.

The SNR improvement asserted is the masked one (``tests.signals.masked_snr_improvement``: the
suppressor's time-frequency gain applied to the speech and to the noise separately), for white
noise and babble at 0 and 10 dB. For white noise the SI-SDR (a waveform measure, which also
counts the frame-to-frame gain the suppressor puts on the talker) must improve by the floor too.

Babble is speech, and RNNoise cannot tell the talker from other talkers. Against a crowd (24
espeak talkers: six sentences in four voices and speeds each, shifted in time) the masked SNR
improves by 3.5-5 dB while the SI-SDR stays about where it was (-0.3 to +1 dB): recorded, not
asserted. Against a few talkers (6) RNNoise takes the talker down with them: the SI-SDR falls by
~10 dB and the masked SNR at 0 dB too. That case is measured and recorded only: it is what
RNNoise does, and the mix setting is the remedy the user has.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.signals import espeak, masked_snr_improvement, mix_at_snr, si_sdr
from voicegui.cli import main
from voicegui.engine import denoise as dn
from voicegui.engine import processor as processor_mod
from voicegui.engine.denoise import MODEL_DELAY, Denoiser, RNNoiseState
from voicegui.engine.offline import convert_array, run_blocks
from voicegui.engine.processor import BlockProcessor
from voicegui.settings import Settings, SettingsError, with_changes
from voicegui.voices.dsp import DSPVoice
from voicegui.voices.passthrough import PassthroughVoice

SR = 48000
GATE_OFF = {"gate_threshold_db": -90.0}
IMPROVEMENT_FLOOR_DB = 3.0

BABBLE_VOICES = [
    ("en+f3", "en-gb+m3", "en-us+f2", "en+m7", "en+f4", "en-us+m2"),
    ("en+f1", "en+m1", "en-gb+f5", "en+m4", "en-us+f4", "en+m5"),
    ("en-us+f3", "en+m3", "en+f2", "en-gb+m7", "en-us+f5", "en+m2"),
    ("en-gb+f1", "en-us+m1", "en+f5", "en-us+m4", "en-gb+f4", "en-gb+m5"),
]
BABBLE_TALKERS = [
    ("Peter Piper picked a peck of pickled peppers, where is the peck he picked.", "en+f3", 160),
    ("A journey of a thousand miles begins with a single step, they say.", "en-gb+m3", 140),
    ("Please call Stella and ask her to bring these things from the store.", "en-us+f2", 170),
    ("The rain in Spain stays mainly in the plain, or so the story goes.", "en+m7", 150),
    ("Six slippery snails slid slowly seaward on a sunny Sunday morning.", "en+f4", 155),
    ("Can you hear the bells ringing from the old church tower tonight.", "en-us+m2", 145),
]


def stream(x: np.ndarray, d: Denoiser) -> np.ndarray:
    """``x`` through ``d`` block by block, with the stage's delay removed (same length as x)."""
    b = d.block
    delay = round(d.delay_seconds * d.device_rate)
    n = -(-(len(x) + delay) // b) * b
    padded = np.zeros(n, dtype=np.float32)
    padded[: len(x)] = x
    y = np.concatenate([d.process(padded[i : i + b]).copy() for i in range(0, n, b)])
    return y[delay : delay + len(x)]


def xcorr_delay(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    n = len(x) - max_lag
    scores = [float(np.dot(x[:n], y[lag : lag + n])) for lag in range(max_lag)]
    return int(np.argmax(scores))


@pytest.fixture(scope="module")
def talkers(tmp_path_factory) -> list[np.ndarray]:
    """24 espeak utterances at 48 kHz: each sentence in four voices (pitch, timbre) and speeds."""
    folder = tmp_path_factory.mktemp("babble")
    out = []
    for k, voices in enumerate(BABBLE_VOICES):
        for i, ((text, _, speed), voice) in enumerate(zip(BABBLE_TALKERS, voices, strict=True)):
            path = espeak(text, folder / f"{k}_{i}.wav", voice, speed + 7 * k)
            x, sr = sf.read(str(path), dtype="float32")
            out.append(soxr.resample(x, sr, SR))
    return out


def make_babble(talkers: list[np.ndarray], n: int, seed: int = 3) -> np.ndarray:
    """The talkers at equal level, each looped to ``n`` samples and shifted at random."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=np.float64)
    for u in talkers:
        u = np.resize(u, n).astype(np.float64)
        out += np.roll(u, int(rng.integers(n))) / np.sqrt(np.mean(u**2))
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def babble(speech_48k, talkers) -> np.ndarray:
    """A crowd: all 24 talkers."""
    return make_babble(talkers, len(speech_48k))


@pytest.fixture(scope="module")
def babble6(speech_48k, talkers) -> np.ndarray:
    """A few talkers: the first six (one voice per sentence)."""
    return make_babble(talkers[:6], len(speech_48k))


@pytest.fixture(scope="module")
def white(speech_48k) -> np.ndarray:
    return np.random.default_rng(5).standard_normal(len(speech_48k)).astype(np.float32)


@pytest.fixture(scope="module")
def measurements(output_dir):
    found: dict = {}
    yield found
    path = output_dir / "denoise_measurements.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **found}, indent=2) + "\n")


# ---- the library ----------------------------------------------------------------------------
def test_library_frame_size_and_delay(speech_48k):
    lib = dn.load_library()
    assert lib.rnnoise_get_frame_size() == dn.FRAME == 480
    state = RNNoiseState()
    x = speech_48k[: len(speech_48k) // 480 * 480]
    y = np.zeros_like(x)
    for i in range(0, len(x), 480):
        state.process(x[i : i + 480], y[i : i + 480])
    assert xcorr_delay(x, y, 2000) == MODEL_DELAY
    # clean speech comes through at that lag: the residual is far below the speech
    e = y[MODEL_DELAY:] - x[:-MODEL_DELAY]
    assert 10 * np.log10(np.sum(e**2) / np.sum(x**2)) < -10.0
    assert 0.0 <= state.speech_probability <= 1.0


def test_same_output_as_the_pyrnnoise_wrapper(speech_48k, white):
    """pyrnnoise's own path rounds to int16 on the way in and out; ours keeps floats.

    The two differ by that rounding only: about -80 dB of speech power per rounding (a step of
    1/32768, power step^2/12 against speech at -20 dBFS), a little more after the recurrence;
    -50 dB leaves room for it and still fails on any misuse (scale, frame, order).
    """
    from pyrnnoise.rnnoise import create, destroy, process_mono_frame

    x = np.clip(speech_48k + 0.02 * white, -1, 1).astype(np.float32)
    x = x[: len(x) // 480 * 480]
    state = create()
    try:
        frames = [process_mono_frame(state, x[i : i + 480])[0] for i in range(0, len(x), 480)]
    finally:
        destroy(state)
    ref = np.concatenate(frames).astype(np.float32) / 32767.0
    ours = RNNoiseState()
    y = np.zeros_like(x)
    for i in range(0, len(x), 480):
        ours.process(x[i : i + 480], y[i : i + 480])
    e = (y - ref).astype(np.float64)
    assert 10 * np.log10(np.sum(e**2) / np.sum(ref.astype(np.float64) ** 2)) < -50.0


# ---- the streaming stage --------------------------------------------------------------------
@pytest.mark.parametrize("block", [480, 960, 256, 1000, 64])
def test_any_block_size_at_48k_is_an_exact_delay_at_mix_zero(speech_48k, block):
    d = Denoiser(SR, block, mix=0.0)
    delay = round(d.delay_seconds * SR)
    assert delay == MODEL_DELAY + (480 - np.gcd(block, 480))
    x = speech_48k[:SR]
    y = stream(x, d)
    assert np.array_equal(y, x)  # the dry tap is the input, delayed by exactly the stage's delay


@pytest.mark.parametrize("rate,block", [(44100, 441), (44100, 512), (16000, 320), (11025, 256)])
def test_other_rates_have_the_reported_delay(speech_48k, rate, block):
    x = soxr.resample(speech_48k[: 2 * SR], SR, rate).astype(np.float32)
    for mix in (0.0, 1.0):
        d = Denoiser(rate, block, mix=mix)
        delay = d.delay_seconds * rate
        b = block
        n = -(-len(x) // b) * b
        padded = np.zeros(n, dtype=np.float32)
        padded[: len(x)] = x
        y = np.concatenate([d.process(padded[i : i + b]).copy() for i in range(0, n, b)])
        # whole samples from the cross-correlation: within one sample of the reported delay
        assert abs(xcorr_delay(x, y, int(delay) + 200) - delay) <= 1.0, (mix, delay)


def test_clean_speech_passes_and_noise_alone_is_removed(speech_48k, white):
    y = stream(speech_48k, Denoiser(SR, 480))
    assert abs(10 * np.log10(np.sum(y**2) / np.sum(speech_48k**2))) < 1.0
    noise = 0.05 * white
    y = stream(noise, Denoiser(SR, 480))
    # after a second of adaptation, white noise alone is taken down by far more than 20 dB
    assert 10 * np.log10(np.sum(y[SR:] ** 2) / np.sum(noise[SR:] ** 2)) < -20.0


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
@pytest.mark.parametrize("kind", ["white", "babble", "babble6"])
def test_measured_improvement_on_noisy_speech(
    speech_48k, white, babble, babble6, measurements, kind, snr_db
):
    clean = speech_48k
    noises = {"white": white, "babble": babble, "babble6": babble6}
    mixture, noise = mix_at_snr(clean, noises[kind], snr_db)
    y = stream(mixture, Denoiser(SR, 480))
    snri, speech_att, noise_att = masked_snr_improvement(clean, noise, mixture, y, SR)
    sdr_in, sdr_out = si_sdr(clean, mixture), si_sdr(clean, y)
    measurements[f"{kind}_{snr_db:g}dB"] = {
        "si_sdr_in_db": sdr_in,
        "si_sdr_out_db": sdr_out,
        "si_sdr_improvement_db": sdr_out - sdr_in,
        "masked_snr_improvement_db": snri,
        "speech_attenuation_db": speech_att,
        "noise_attenuation_db": noise_att,
    }
    assert np.all(np.isfinite(y))
    if kind == "babble6":
        return  # recorded only (see the module's docstring)
    assert snri > IMPROVEMENT_FLOOR_DB
    if kind == "white":
        assert sdr_out - sdr_in > IMPROVEMENT_FLOOR_DB


@pytest.mark.parametrize("kind", ["white", "babble"])
def test_mix_zero_is_a_negative_control(speech_48k, white, babble, kind):
    mixture, noise = mix_at_snr(speech_48k, white if kind == "white" else babble, 0.0)
    y = stream(mixture, Denoiser(SR, 480, mix=0.0))
    assert si_sdr(speech_48k, y) == si_sdr(speech_48k, mixture)
    assert masked_snr_improvement(speech_48k, noise, mixture, y, SR)[0] == pytest.approx(
        0, abs=1e-6
    )


def test_half_mix_lies_between(speech_48k, white):
    mixture, noise = mix_at_snr(speech_48k, white, 0.0)
    full = si_sdr(speech_48k, stream(mixture, Denoiser(SR, 480, mix=1.0)))
    half = si_sdr(speech_48k, stream(mixture, Denoiser(SR, 480, mix=0.5)))
    assert si_sdr(speech_48k, mixture) < half < full


def test_mix_change_is_ramped_without_a_step(speech_48k):
    d = Denoiser(SR, 480, mix=0.0)
    x = speech_48k[: SR // 2]
    out = []
    for i in range(0, len(x), 480):
        if i == 24000:
            d.set_mix(1.0)
        out.append(d.process(x[i : i + 480]).copy())
    y = np.concatenate(out)
    # the largest sample-to-sample step is no larger than the speech's own
    assert np.max(np.abs(np.diff(y))) <= 1.05 * np.max(np.abs(np.diff(x)))


# ---- in the engine --------------------------------------------------------------------------
def _settings(**engine) -> Settings:
    return with_changes(Settings(), engine={**GATE_OFF, "block_time": 0.01, **engine})


@pytest.mark.parametrize("voice", [PassthroughVoice, DSPVoice])
@pytest.mark.parametrize("rate", [48000, 44100])
def test_off_is_bit_identical(speech_48k, white, monkeypatch, voice, rate):
    x = soxr.resample(speech_48k + 0.05 * white, SR, rate).astype(np.float32)

    def never(*a, **k):
        raise AssertionError("the suppressor must not exist while it is off")

    plain = Settings()  # as before the feature: its fields at their defaults (off)
    y_default, p_default = convert_array(x, rate, voice(), plain)
    monkeypatch.setattr(processor_mod, "Denoiser", never)
    other_mix = with_changes(plain, engine={"denoise": False, "denoise_mix": 0.3})
    y_off, p_off = convert_array(x, rate, voice(), other_mix)
    assert np.array_equal(y_default, y_off)
    assert p_off.denoiser is None and p_off.latency().denoise == 0.0
    assert p_off.latency() == p_default.latency()
    assert p_off.dry_delay_dev() == p_off.wet_delay_dev()


@pytest.mark.parametrize("rate", [48000, 44100])
@pytest.mark.parametrize("bypass", [False, True])
def test_in_engine_latency_matches_and_dry_stays_aligned(speech_48k, bypass, rate):
    x = soxr.resample(speech_48k, SR, rate).astype(np.float32)
    y, proc = convert_array(x, rate, PassthroughVoice(), _settings(denoise=True, bypass=bypass))
    lat = proc.latency()
    if rate == SR:
        assert lat.denoise == pytest.approx(MODEL_DELAY / SR)
    assert lat.algorithmic == pytest.approx(
        lat.block + lat.lookahead + lat.sola + lat.resampler + lat.denoise
    )
    # whole samples from the cross-correlation: within one sample of the reported figure
    measured = xcorr_delay(x, y, int(0.2 * rate)) / rate
    assert abs(measured - lat.algorithmic) <= 1.0 / rate, (measured, lat.algorithmic)


def test_in_engine_improvement_with_the_voice(speech_48k, white):
    mixture, _ = mix_at_snr(speech_48k, white, 0.0)
    out = {}
    for on in (False, True):
        y, proc = convert_array(mixture, SR, PassthroughVoice(), _settings(denoise=on))
        d = round(proc.latency().algorithmic * SR)
        out[on] = si_sdr(speech_48k[: len(y) - d], y[d:])
    assert out[True] - out[False] > IMPROVEMENT_FLOOR_DB


def test_live_toggle_joins_once_then_keeps_its_delay(speech_48k, white):
    mixture, _ = mix_at_snr(speech_48k, white, 0.0)
    settings = _settings()
    proc = BlockProcessor(PassthroughVoice(), settings, SR)
    before = proc.latency().algorithmic
    b = proc.block_dev
    third = len(mixture) // 3 // b * b
    outs = [run_blocks(proc, mixture[:third])]
    proc.request(with_changes(settings, engine={"denoise": True}))
    outs.append(run_blocks(proc, mixture[third : 2 * third]))
    on = proc.latency().algorithmic
    assert on == pytest.approx(before + MODEL_DELAY / SR)
    assert proc.dry_delay_dev() == round((before - proc.latency().block) * SR)
    proc.request(with_changes(settings, engine={"denoise": False}))
    outs.append(run_blocks(proc, mixture[2 * third : 3 * third]))
    assert proc.latency().algorithmic == on  # off keeps the delay: no second jump
    assert proc.denoiser is not None and proc.denoiser.mix == 0.0
    # switched off: the noise is back (level as with no suppression); on: it was taken off
    level = [10 * np.log10(np.mean(o[len(o) // 2 :] ** 2)) for o in outs]
    assert level[1] < level[0] - IMPROVEMENT_FLOOR_DB
    assert abs(level[2] - level[0]) < 1.0


def test_live_switch_on_builds_the_suppressor_outside_the_block_thread(speech_48k):
    settings = _settings()
    proc = BlockProcessor(PassthroughVoice(), settings, SR)
    run_blocks(proc, speech_48k[:4800])
    proc.request(with_changes(settings, engine={"denoise": True, "denoise_mix": 0.5}))
    spare = proc._spare_denoiser
    assert spare is not None and proc.denoiser is None  # built by request, not yet in use
    run_blocks(proc, speech_48k[4800:9600])
    assert proc.denoiser is spare and proc._spare_denoiser is None
    assert spare.mix == 0.5 and spare._mix == 0.5  # starts at the asked mix, no ramp from 1


def test_live_switch_on_without_the_library_keeps_the_audio_going(speech_48k, monkeypatch):
    def missing(*a, **k):
        raise ImportError("no pyrnnoise here")

    monkeypatch.setattr(processor_mod, "Denoiser", missing)
    settings = _settings()
    proc = BlockProcessor(PassthroughVoice(), settings, SR)
    before = proc.latency()
    proc.request(with_changes(settings, engine={"denoise": True}))
    y = run_blocks(proc, speech_48k[:SR])
    assert proc.denoiser is None and "no pyrnnoise here" in proc.last_error
    assert proc.latency() == before and np.max(np.abs(y)) > 0.01
    with pytest.raises(ImportError):  # at start (convert, a stream start) it is an error
        BlockProcessor(PassthroughVoice(), with_changes(settings, engine={"denoise": True}), SR)


def test_settings_round_trip_and_validation():
    s = with_changes(Settings(), engine={"denoise": True, "denoise_mix": 0.25})
    assert Settings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(SettingsError, match="Suppression mix"):
        with_changes(Settings(), engine={"denoise_mix": 1.5})
    with pytest.raises(SettingsError, match="true or false"):
        with_changes(Settings(), engine={"denoise": 1})


# ---- command line ---------------------------------------------------------------------------
def test_convert_with_denoise(tmp_path, capsys, speech_48k, white):
    mixture, _ = mix_at_snr(speech_48k, white, 0.0)
    src = tmp_path / "noisy.wav"
    sf.write(str(src), mixture, SR, subtype="FLOAT")
    results = {}
    for flag in ("--no-denoise", "--denoise"):
        dst = tmp_path / f"out{flag}.wav"
        args = ["convert", str(src), str(dst), "--voice", "passthrough", "--gate-db", "-90"]
        assert main([*args, "--block-time", "0.01", flag]) == 0
        report = json.loads(capsys.readouterr().out)
        y, _ = sf.read(str(dst), dtype="float32")
        d = round(report["latency"]["algorithmic_ms"] * SR / 1000)
        results[flag] = (report["latency"]["denoise_ms"], si_sdr(speech_48k[: len(y) - d], y[d:]))
    assert results["--no-denoise"][0] == 0.0
    assert results["--denoise"][0] == pytest.approx(1000 * MODEL_DELAY / SR)
    assert results["--denoise"][1] - results["--no-denoise"][1] > IMPROVEMENT_FLOOR_DB


def test_bench_reports_the_suppressor_cost(capsys):
    args = ["bench", "--seconds", "1", "--block-time", "0.01", "--voice", "passthrough"]
    assert main([*args, "--denoise"]) == 0
    run = json.loads(capsys.readouterr().out)["voice_run"]
    assert run["denoise"]["frames_10ms"] == 100
    assert 0 < run["denoise"]["per_10ms_ms"] < 10.0  # real time: below one 10 ms frame
    assert run["latency"]["denoise_ms"] == pytest.approx(20.0)
    assert main(args) == 0
    assert "denoise" not in json.loads(capsys.readouterr().out)["voice_run"]
