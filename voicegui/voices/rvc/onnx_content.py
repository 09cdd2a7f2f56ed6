"""HuBERT / ContentVec as an ONNX graph for the onnxruntime backend, and the export cache that
RVC's ONNX graphs share.

Each graph is exported once per (source files' sha256, exporter version, precision) into the
user cache (``paths.cache_dir()/onnx``, the folder Seed-VC's exports use), in a folder named
``rvc-<graph>-<precision>-<key>``; a folder counts only once its manifest is written (last, after
an atomic rename), so an interrupted export is redone, never half-used. ``int8`` graphs are made
from the fp32 export by dynamic quantisation (int8 weights, activations quantised per call):
the content encoder's MatMul weights per channel, as Seed-VC's are; the synthesizer's
convolutions per tensor (:func:`quantize_convs_int8`).

The content graph takes the 16 kHz window (1, N) and returns the features RVC wants for the
model's version: the last layer (v2, 768-d) or ``final_proj`` of layer 9 (v1, 256-d).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .hubert import V1_LAYER, HubertContent

EXPORTER_VERSION = 1  # bump when a graph changes: every cached RVC export is rebuilt
OPSET = 17
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
PRECISIONS = ("fp32", "int8")

Progress = Callable[[str, int, int], None]


class _ContentGraph(nn.Module):
    def __init__(self, hubert: HubertContent, version: str) -> None:
        super().__init__()
        self.hubert, self.version = hubert, version

    def forward(self, wav: Tensor) -> Tensor:
        if self.version == "v1":
            return self.hubert.final_proj(self.hubert.hidden_states(wav, V1_LAYER)[-1])
        return self.hubert.hidden_states(wav)[-1]


def export_content(hubert: HubertContent, version: str, path: Path) -> Path:
    """Write the content features of ``version`` ('v1'/'v2') as an fp32 ONNX graph."""
    if version == "v1" and hubert.final_proj is None:
        raise ValueError("this content encoder has no final_proj, which v1 voices need")
    module = _ContentGraph(hubert.float().eval(), version)
    example = torch.zeros(1, 16000)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python-side shape arithmetic
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["wav"],
            output_names=["features"],
            dynamic_axes={"wav": [1], "features": [1]},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def quantize_convs_int8(src: Path, out: Path) -> None:
    """Dynamic int8 quantisation of every Conv (ConvInteger): per-tensor unsigned weights, the
    form onnxruntime's CPU kernel runs fast (measured: per-channel signed weights ran 4-6x
    slower than the fp32 graph)."""
    from onnxruntime.quantization import QuantType

    from voicegui.voices.onnx.export import quantize_weights

    quantize_weights(src, out, "Conv", per_channel=False, weight_type=QuantType.QUInt8)


def cached_graph(
    graph: str,
    precision: str,
    sources: list[Path],
    export: Callable[[Path], object],
    root: Path | None = None,
    progress: Progress | None = None,
    quantize: Callable[[Path, Path], None] | None = None,
) -> Path:
    """The ONNX file of ``graph`` at ``precision``, exported from ``sources`` by ``export(path)``
    (fp32) when not cached; int8 is ``quantize(fp32 file, out)`` (default: the MatMul weights)
    of the fp32 export, which is kept as well."""
    from voicegui.voices.onnx.export import (
        default_root,
        file_sha256,
        folder_key,
        publish,
        quantize_int8,
    )

    if precision not in PRECISIONS:
        raise ValueError(f"ONNX precision must be one of {', '.join(PRECISIONS)}")
    root = Path(root) if root is not None else default_root()
    root.mkdir(parents=True, exist_ok=True)
    digests = [file_sha256(p, root) for p in sources]
    key = folder_key(
        graph=graph, precision=precision, sha256=digests, exporter=EXPORTER_VERSION, opset=OPSET
    )
    folder = root / f"rvc-{graph}-{precision}-{key}"
    if (folder / MANIFEST).is_file() and (folder / MODEL_FILE).is_file():
        return folder / MODEL_FILE
    if precision == "int8":
        base = cached_graph(graph, "fp32", sources, export, root, progress)

        def write(out: Path) -> None:
            (quantize or quantize_int8)(base, out)
    else:
        write = export

    def build(tmp: Path) -> dict:
        write(tmp / MODEL_FILE)
        return {
            "graph": graph,
            "precision": precision,
            "exporter_version": EXPORTER_VERSION,
            "sources": [str(p) for p in sources],
            "sha256": digests,
        }

    if progress is not None:
        progress(f"{graph} ({precision})", 0, 1)
    publish(folder, build)
    if progress is not None:
        progress(f"{graph} ({precision})", 1, 1)
    return folder / MODEL_FILE


class OnnxContent:
    """``features(wav16k, version)`` like HubertContent's, from an exported graph."""

    def __init__(self, path: Path, version: str, plan, threads: int | None = None):
        """``plan``: a ProviderPlan (voices/onnx/providers.py), probed."""
        from voicegui.voices.onnx import providers as PV

        self.version = version
        self.plan = plan
        self.session, self.providers = PV.create_session(Path(path), self.plan, threads=threads)
        PV.check_active(self.plan, self.providers)

    def features(self, wav16k: Tensor, version: str) -> Tensor:
        if version != self.version:
            raise ValueError(f"this content graph computes {self.version} features, not {version}")
        wav = wav16k.detach().float().cpu().numpy().reshape(1, -1)
        out = self.session.run(["features"], {"wav": np.ascontiguousarray(wav)})[0]
        return torch.from_numpy(out)
