"""Loading the voice model files users have: v1/v2, 32k/40k/48k, with and without pitch,
Applio's files, fp16 on disk, and damaged or foreign files refused with a message that names
the problem. Real files: the kit's checkpoints, and copies of them changed the way other tools
write them (model_files.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.rvc.kit import rvc_kit_dir
from tests.rvc.kit_tables import stream_block_features, stream_blocks, upsample_features
from tests.rvc.model_files import (
    UPSTREAM_CONFIGS,
    applio_style,
    load_raw,
    random_model,
    save,
    without_pitch,
)
from voicegui.voices.rvc.checkpoints import (
    VoiceModelError,
    load_voice_model,
    read_voice_model_info,
)
from voicegui.voices.rvc.synthesizer import SynthNoise


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _stems() -> list[str]:
    kit = rvc_kit_dir()
    return sorted(p.stem.removeprefix("keys_") for p in kit.glob("keys_rvc_*.json"))


STEMS = _stems()


def _path(rvc_assets, stem: str):
    return rvc_assets / "weights" / f"{stem}.pth"


def _block(expected: dict):
    """A short synthesizer call from the kit's first stream block: (phone, pitch, f0, kwargs)."""
    prefix = stream_blocks(expected, "s1")[0] if "s1_b1_synth_out" in expected else None
    prefix = prefix or next(k[: -len("synth_out")] for k in expected if k.endswith("_synth_out"))
    pitch = _t(expected[prefix + "synth_pitch"])
    frames = pitch.shape[-1]
    phone = upsample_features(stream_block_features(expected, prefix), frames)
    return (
        phone,
        pitch,
        _t(expected[prefix + "synth_pitchf"]),
        dict(skip_head=frames - 12, return_length=8),
    )


def _run(model, block, with_pitch: bool = True):
    phone, pitch, f0, kw = block
    if phone.shape[-1] != model.config.feature_dim:  # a v1 model gets the first 256 channels
        phone = phone[..., : model.config.feature_dim].contiguous()
    n = phone.shape[1] - kw["skip_head"] + 24
    noise = SynthNoise(
        z=torch.randn(
            1, model.config.inter_channels, n, generator=torch.Generator().manual_seed(1)
        ),
        sine=torch.randn(
            kw["return_length"] * model.upp, generator=torch.Generator().manual_seed(2)
        ),
    )
    if not with_pitch:
        return model.infer(phone, None, None, 0, noise=noise, **kw).audio
    return model.infer(phone, pitch, f0, 0, noise=noise, **kw).audio


# ---------------------------------------------------------------- what users have


@pytest.mark.parametrize("stem", STEMS)
def test_kit_models_describe_themselves(rvc_assets, stem):
    raw = load_raw(_path(rvc_assets, stem))
    info = read_voice_model_info(_path(rvc_assets, stem))
    assert info.version == raw["version"]
    assert info.f0 is bool(raw["f0"])
    assert info.sample_rate == raw["config"][-1]
    assert info.speakers == raw["weight"]["emb_g.weight"].shape[0]
    assert info.vocoder == "HiFi-GAN"
    assert info.metadata["info"] == raw["info"]
    assert info.config.upp * 100 == info.sample_rate


@pytest.mark.parametrize("stem", STEMS)
def test_no_pitch_variant_runs_the_same_network(rvc_assets, rvc_expected, tmp_path, stem):
    """A no-f0 model (the file without the pitch parts, f0=0) builds the plain HiFi-GAN decoder
    and a prior encoder without pitch embedding. It must equal the pitch model with its pitch
    embedding and source convs set to zero (x + 0 is exact), for the same noise."""
    raw = load_raw(_path(rvc_assets, stem))
    nono_path = save(without_pitch(raw), tmp_path / f"{stem}_nono.pth")
    nono, info = load_voice_model(nono_path)
    assert info.f0 is False and nono.dec.m_source is None and nono.enc_p.emb_pitch is None
    ref, _ = load_voice_model(_path(rvc_assets, stem))
    with torch.no_grad():
        ref.enc_p.emb_pitch.weight.zero_()
        for conv in ref.dec.noise_convs:
            conv.weight.zero_()
            conv.bias.zero_()
    block = _block(rvc_expected)
    torch.testing.assert_close(_run(nono, block, False), _run(ref, block), rtol=0, atol=0)


@pytest.mark.parametrize("parametrizations", [False, True])
def test_applio_file_loads_with_its_metadata(rvc_assets, rvc_expected, tmp_path, parametrizations):
    stem = STEMS[-1]
    raw = load_raw(_path(rvc_assets, stem))
    path = save(applio_style(raw, parametrizations=parametrizations), tmp_path / "Ünïcode.pth")
    model, info = load_voice_model(path)
    assert info.vocoder == "HiFi-GAN" and info.f0 is True
    assert info.metadata["model_name"] == "Ünïcode voice"
    assert info.metadata["author"] == "someone"
    assert info.metadata["embedder_model"] == "contentvec"
    assert info.metadata["speakers_id"] == 1
    ref, _ = load_voice_model(_path(rvc_assets, stem))
    block = _block(rvc_expected)
    torch.testing.assert_close(_run(model, block), _run(ref, block), rtol=0, atol=0)


@pytest.mark.parametrize("vocoder", ["MRF HiFi-GAN", "RefineGAN"])
def test_other_vocoders_are_refused_by_name(rvc_assets, tmp_path, vocoder):
    raw = load_raw(_path(rvc_assets, STEMS[-1]))
    path = save(applio_style(raw, vocoder=vocoder), tmp_path / "m.pth")
    with pytest.raises(VoiceModelError, match=f"{vocoder} vocoder.*HiFi-GAN"):
        load_voice_model(path)


def test_fp32_file_loads_the_same_weights(rvc_assets, tmp_path):
    stem = STEMS[-1]
    raw = load_raw(_path(rvc_assets, stem))
    assert all(v.dtype == torch.float16 for v in raw["weight"].values())  # as RVC ships them
    raw32 = dict(raw, weight={k: v.float() for k, v in raw["weight"].items()})
    a, _ = load_voice_model(save(raw32, tmp_path / "fp32.pth"))
    b, _ = load_voice_model(_path(rvc_assets, stem))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka


@pytest.mark.parametrize(("version", "rate"), sorted(UPSTREAM_CONFIGS))
def test_other_rates_and_layouts(rvc_kit, rvc_expected, tmp_path, version, rate):
    """32k (v1 has 5 upsampling stages) and v1 48k: the file loads and a block comes out at the
    model rate, bounded. (No upstream output exists for these; the network is the one the
    parity tests check, with other stage counts and strides.)"""
    obj = random_model(rvc_kit, f"rvc_{version}_{rate // 1000}k", version, rate)
    model, info = load_voice_model(save(obj, tmp_path / f"{version}_{rate}.pth"))
    assert (info.version, info.sample_rate, info.config.upp) == (version, rate, rate // 100)
    audio = _run(model, _block(rvc_expected))
    assert audio.shape == (1, 1, 8 * rate // 100)
    assert torch.isfinite(audio).all() and 0 < audio.abs().max() < 1


# ---------------------------------------------------------------- refused, with the reason


def _refused(path, pattern: str) -> None:
    with pytest.raises(VoiceModelError, match=pattern):
        load_voice_model(path)


def test_truncated_file(rvc_assets, tmp_path):
    data = _path(rvc_assets, STEMS[-1]).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    _refused(tmp_path / "cut.pth", "truncated or corrupt")


def test_garbage_and_empty_files(tmp_path):
    (tmp_path / "noise.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(tmp_path / "noise.pth", "truncated or corrupt")
    (tmp_path / "empty.pth").write_bytes(b"")
    _refused(tmp_path / "empty.pth", "empty")
    _refused(tmp_path / "missing.pth", "not found")


class _Payload:
    """Any object weights_only refuses to unpickle."""


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    torch.save({"weight": {}, "config": _Payload()}, tmp_path / "evil.pth")
    _refused(tmp_path / "evil.pth", "refusing to load evil.pth")


def test_foreign_files(rvc_assets, tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    _refused(tmp_path / "tensor.pth", "holds a Tensor")
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    _refused(tmp_path / "other.pth", "no 'weight' entry.*state_dict")
    raw = load_raw(_path(rvc_assets, STEMS[-1]))
    torch.save({"model": raw["weight"], "iteration": 3, "optimizer": {}}, tmp_path / "G_3.pth")
    _refused(tmp_path / "G_3.pth", "training checkpoint")


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda o: o["weight"].pop("dec.conv_post.weight"),
            r"missing tensors: dec\.conv_post\.weight",
        ),
        (lambda o: o["weight"].pop("dec.ups.1.weight_g"), r"dec\.ups\.1\.weight_g"),
        (lambda o: o["weight"].update(extra=torch.zeros(2)), r"unexpected tensors: extra"),
        (
            lambda o: o["weight"].update({"dec.conv_pre.bias": torch.zeros(5)}),
            r"wrong shapes: dec\.conv_pre\.bias \(file \(5,\)",
        ),
        (
            lambda o: o["weight"]["flow.flows.2.post.bias"].__setitem__(0, float("nan")),
            r"NaN or infinite values: flow\.flows\.2\.post\.bias",
        ),
        (lambda o: o.__setitem__("config", o["config"][:-1]), "config has 17 items"),
        (
            lambda o: o.__setitem__("version", "v1" if o["version"] == "v2" else "v2"),
            "says version",
        ),
        (lambda o: o.__setitem__("f0", 0), "says f0=0 but has a pitch embedding"),
        (lambda o: o.__setitem__("sr", "32k"), "says sr=32k"),
        (lambda o: o["config"].__setitem__(12, [10, 10, 2, 3]), "samples per frame"),
        (lambda o: o.pop("config"), "no 'config' entry"),
    ],
    ids=[
        "missing",
        "half-pair",
        "unexpected",
        "shape",
        "nan",
        "config",
        "version",
        "f0",
        "sr",
        "rates",
        "no-config",
    ],
)
def test_damaged_contents_are_named(rvc_assets, tmp_path, change, pattern):
    raw = load_raw(_path(rvc_assets, STEMS[-1]))
    raw["config"] = list(raw["config"])
    change(raw)
    _refused(save(raw, tmp_path / "bad.pth"), pattern)


def test_info_does_not_build_the_network(rvc_assets, monkeypatch):
    """Listing a model (the library) reads its metadata without building a synthesizer."""
    from voicegui.voices.rvc import checkpoints

    def boom(*a, **k):
        raise AssertionError("built")

    monkeypatch.setattr(checkpoints, "Synthesizer", boom)
    assert read_voice_model_info(_path(rvc_assets, STEMS[-1])).speakers > 0
