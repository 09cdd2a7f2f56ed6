"""Exporting an RVC synthesizer to ONNX, in the layouts other tools read and in voicegui's own.

Layouts (input names, in order; output ``audio`` (1, 1, samples)):

* ``rvc`` (RVC WebUI's export): phone (1, T, C), phone_lengths (1,), pitch (1, T), pitchf
  (1, T), ds (1,), rnd (1, 192, T). The prior noise ``rnd`` is used as given (callers scale it
  by the sampling temperature); the sine source draws its noise inside the graph. No metadata.
* ``wokada`` (w-okada's voice changer): feats, p_len, pitch, pitchf, sid (no-pitch models:
  feats, p_len, sid); all noise drawn inside; JSON metadata under the key ``metadata``
  (application VC_CLIENT, modelType, samplingRate, f0, embChannels, embedder, ...).
* ``deiteris`` (its fork with streaming): the w-okada inputs plus 0-d int64 skip_head,
  return_length, formant_length; the same metadata.
* ``voicegui``: feats, [pitch, pitchf,] sid, skip_head, return_length, formant_length,
  z_noise (1, 192, T - max(skip_head - 24, 0)), [sine_noise (1, return_length * upp)]: every
  random draw is an input (the shapes of the draws the torch model makes), so runs repeat and
  match it; JSON metadata under the key ``voicegui``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .synthesizer import FLOW_CONTEXT, PRIOR_SCALE, Synthesizer

LAYOUTS = ("rvc", "wokada", "deiteris", "voicegui")
OPSET = 17
WOKADA_METADATA_KEY = "metadata"
VOICEGUI_METADATA_KEY = "voicegui"
VOICEGUI_LAYOUT_VERSION = 1


def _masked(feats, lengths):
    """Zero the frames past ``lengths`` (all frames are valid in practice: the length input is
    kept because the layouts carry it)."""
    valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
    return feats * valid.unsqueeze(-1).to(feats.dtype)


class _Rvc(nn.Module):
    def __init__(self, synth: Synthesizer) -> None:
        super().__init__()
        self.s = synth

    def forward(self, phone, phone_lengths, pitch, pitchf, ds, rnd):
        s = self.s
        g = s.emb_g(ds).unsqueeze(-1)
        m_p, logs_p = s.enc_p(_masked(phone, phone_lengths), pitch)
        z = s.flow(m_p + torch.exp(logs_p) * rnd, g)
        return s.dec(z, g, pitchf)


class _Wokada(nn.Module):
    def __init__(self, synth: Synthesizer) -> None:
        super().__init__()
        self.s = synth

    def forward(self, feats, p_len, *rest):
        pitch, pitchf, sid = rest if self.s.f0 else (None, None, rest[0])
        return self.s(_masked(feats, p_len), pitch, pitchf, sid, None, None, None)


class _Deiteris(nn.Module):
    def __init__(self, synth: Synthesizer) -> None:
        super().__init__()
        self.s = synth

    def forward(self, feats, p_len, *rest):
        if self.s.f0:
            pitch, pitchf, sid, skip_head, return_length, formant_length = rest
        else:
            pitch = pitchf = None
            sid, skip_head, return_length, formant_length = rest
        feats = _masked(feats, p_len)
        return self.s(feats, pitch, pitchf, sid, skip_head, return_length, formant_length)


class _Voicegui(nn.Module):
    def __init__(self, synth: Synthesizer) -> None:
        super().__init__()
        self.s = synth

    def forward(self, feats, *rest):
        s = self.s
        if s.f0:
            pitch, pitchf, sid, skip_head, return_length, formant_length, z_noise, sine = rest
        else:
            pitch = pitchf = sine = None
            sid, skip_head, return_length, formant_length, z_noise = rest
        g = s.emb_g(sid).unsqueeze(-1)
        out = s.synthesize(
            feats,
            pitch,
            pitchf,
            g,
            z_noise,
            sine,
            skip_head,
            return_length,
            formant_length,
        )
        return out.audio


def _example(synth: Synthesizer, layout: str, frames: int = 64) -> tuple[list[str], tuple, dict]:
    c = synth.config
    feats = torch.zeros(1, frames, c.feature_dim)
    pitch = torch.full((1, frames), 100, dtype=torch.long)
    pitchf = torch.full((1, frames), 200.0)
    sid = torch.zeros(1, dtype=torch.long)
    length = torch.tensor([frames], dtype=torch.long)
    skip, ret = torch.tensor(frames // 2), torch.tensor(frames // 4)
    form = torch.tensor(frames // 4 + 1)
    seq = {"pitch": [1], "pitchf": [1]}
    if layout == "rvc":
        names = ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"]
        args = (feats, length, pitch, pitchf, sid, torch.zeros(1, c.inter_channels, frames))
        return names, args, {"phone": [1], "rnd": [2], **seq}
    pitch_part = (pitch, pitchf) if c.f0 else ()
    pitch_names = ["pitch", "pitchf"] if c.f0 else []
    if layout == "wokada":
        names = ["feats", "p_len", *pitch_names, "sid"]
        return names, (feats, length, *pitch_part, sid), {"feats": [1], **seq}
    stream = (skip, ret, form)
    stream_names = ["skip_head", "return_length", "formant_length"]
    if layout == "deiteris":
        names = ["feats", "p_len", *pitch_names, "sid", *stream_names]
        return names, (feats, length, *pitch_part, sid, *stream), {"feats": [1], **seq}
    z = torch.zeros(1, c.inter_channels, frames - max(int(skip) - FLOW_CONTEXT, 0))
    names = ["feats", *pitch_names, "sid", *stream_names, "z_noise"]
    args = (feats, *pitch_part, sid, *stream, z)
    dyn = {"feats": [1], "z_noise": [2], **seq}
    if c.f0:
        names.append("sine_noise")
        args = (*args, torch.zeros(1, int(ret) * c.upp))
        dyn["sine_noise"] = [1]
    return names, args, dyn


def layout_metadata(synth: Synthesizer, layout: str) -> dict[str, str]:
    c = synth.config
    if layout in ("wokada", "deiteris"):
        v1 = c.feature_dim == 256
        model_type = "pyTorchRVC" + ("" if v1 else "v2") + ("" if c.f0 else "Nono")
        meta = {
            "application": "VC_CLIENT",
            "version": "2.1",
            "modelType": model_type,
            "samplingRate": c.sample_rate,
            "f0": c.f0,
            "embChannels": c.feature_dim,
            "embedder": "hubert_base",
            "embOutputLayer": 9 if v1 else 12,
            "useFinalProj": v1,
        }
        return {WOKADA_METADATA_KEY: json.dumps(meta)}
    if layout == "voicegui":
        meta = {
            "layout": "voicegui",
            "version": VOICEGUI_LAYOUT_VERSION,
            "sample_rate": c.sample_rate,
            "f0": c.f0,
            "feature_dim": c.feature_dim,
            "upp": c.upp,
            "inter_channels": c.inter_channels,
            "speakers": c.spk_embed_dim,
            "prior_scale": PRIOR_SCALE,
        }
        return {VOICEGUI_METADATA_KEY: json.dumps(meta)}
    return {}


def export_synthesizer(synth: Synthesizer, path: str | Path, layout: str = "voicegui") -> Path:
    """Write ``synth`` as an ONNX graph in ``layout`` (fp32)."""
    import onnx

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if layout == "rvc" and not synth.f0:
        raise ValueError("RVC's export layout exists for pitch-conditioned models only")
    wrapper = {"rvc": _Rvc, "wokada": _Wokada, "deiteris": _Deiteris, "voicegui": _Voicegui}[layout]
    module = wrapper(synth).eval()
    names, args, dynamic = _example(synth, layout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python-side shape arithmetic
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=["audio"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for key, value in layout_metadata(synth, layout).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
