"""Exporting the Seed-VC stages to ONNX, and the on-disk cache of the exports.

Every stage is exported once per (checkpoint contents, exporter version, precision) into the user
cache (``paths.cache_dir()/onnx``), under a folder whose name carries a key over those three.
A changed checkpoint (its sha256) or a bump of EXPORTER_VERSION gives a new key, hence a new
export; exports made from the same source files with an older key are removed then. A folder
counts only once its ``manifest.json`` is written (last, after an atomic rename), so an
interrupted export is redone rather than half-used.

Precisions: ``fp32`` (exported as is), ``fp16`` (exported with half weights and float32
islands, for GPU providers) and ``int8`` (dynamic int8 quantisation of the fp32 export's MatMul
weights; only for the heavy stages, DiT step and content encoder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EXPORTER_VERSION = 1  # bump whenever a graph changes: every cached export is rebuilt
OPSET = 18
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"

STAGES = ("content", "lr", "dit_prepare", "dit_step", "vocoder", "campplus")
INT8_STAGES = ("content", "dit_step")  # the matmul-heavy ones; the rest stays fp32
PRECISIONS = ("fp32", "fp16", "int8")

Progress = Callable[[str, int, int], None]  # (stage name, index, count)

# Actual exports per (stage, precision) in this process; the cache tests read it.
EXPORT_COUNTS: Counter[tuple[str, str]] = Counter()


class ExportError(RuntimeError):
    """A stage could not be exported (missing optional package, unsupported model...)."""


@dataclass(frozen=True)
class Sources:
    """The checkpoint files of one Seed-VC model."""

    dit: Path
    hift: Path
    campplus: Path
    content_dir: Path | None = None

    def for_stage(self, stage: str) -> tuple[Path, ...]:
        if stage == "content":
            if self.content_dir is None:
                raise ExportError("no content encoder folder given")
            return content_files(self.content_dir)
        if stage in ("lr", "dit_prepare", "dit_step"):
            return (self.dit,)
        return ({"vocoder": self.hift, "campplus": self.campplus}[stage],)


def content_files(folder: Path) -> tuple[Path, ...]:
    weights = folder / "model.safetensors"
    if not weights.is_file():
        weights = folder / "pytorch_model.bin"
    return (folder / "config.json", weights)


def default_root() -> Path:
    from voicegui import paths

    root = paths.cache_dir() / "onnx"
    root.mkdir(parents=True, exist_ok=True)
    return root


# --------------------------------------------------------------------------- hashing


def file_sha256(path: Path, root: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so large files hash once."""
    path = Path(path).resolve()
    st = path.stat()
    memo_path = root / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
        return entry["sha256"]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    memo[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _write_json_atomic(memo_path, memo)
    return digest


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the cache


def folder_key(**fields: object) -> str:
    """The short hash in a cache folder's name: what was exported, from which files' contents,
    by which exporter and opset."""
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def publish(folder: Path, build: Callable[[Path], dict]) -> None:
    """Make the cache folder ``folder``: ``build(tmp)`` writes the model into a temporary sibling
    and returns the manifest, which is written last; then the whole folder is renamed into place.
    A crash or a concurrent reader never sees half an entry (no manifest, no entry)."""
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = build(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class StageKey:
    stage: str
    precision: str
    sources: tuple[Path, ...]
    digests: tuple[str, ...]
    version: int

    @property
    def key(self) -> str:
        return folder_key(
            stage=self.stage,
            precision=self.precision,
            sha256=list(self.digests),
            exporter=self.version,
            opset=OPSET,
        )

    @property
    def folder_name(self) -> str:
        return f"{self.stage}-{self.precision}-{self.key}"


class ExportCache:
    """Finds or builds the ONNX file of each stage."""

    def __init__(self, root: Path | None = None, version: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.version = EXPORTER_VERSION if version is None else version

    def stage_key(self, stage: str, precision: str, sources: Sources) -> StageKey:
        files = sources.for_stage(stage)
        digests = tuple(file_sha256(p, self.root) for p in files)
        return StageKey(
            stage, precision, tuple(Path(p).resolve() for p in files), digests, self.version
        )

    def path(self, key: StageKey) -> Path:
        return self.root / key.folder_name / MODEL_FILE

    def cached(self, key: StageKey) -> bool:
        folder = self.root / key.folder_name
        return (folder / MANIFEST).is_file() and (folder / MODEL_FILE).is_file()

    def ensure(
        self,
        plan: dict[str, str],
        sources: Sources,
        progress: Progress | None = None,
    ) -> dict[str, Path]:
        """ONNX file per stage for ``plan`` (stage -> precision), exporting what is missing."""
        keys = {stage: self.stage_key(stage, prec, sources) for stage, prec in plan.items()}
        # int8 is made from the fp32 export, which is then kept as well
        todo: list[StageKey] = []
        for key in keys.values():
            if key.precision == "int8":
                base = self.stage_key(key.stage, "fp32", sources)
                if not self.cached(base) and not self.cached(key):
                    todo.append(base)
            if not self.cached(key):
                todo.append(key)
        for i, key in enumerate(todo):
            if progress is not None:
                progress(f"{key.stage} ({key.precision})", i, len(todo))
            self._build(key, sources)
        if todo and progress is not None:
            progress("done", len(todo), len(todo))
        return {stage: self.path(key) for stage, key in keys.items()}

    def _build(self, key: StageKey, sources: Sources) -> None:
        t0 = time.perf_counter()

        def build(tmp: Path) -> dict:
            if key.precision == "int8":
                base = self.path(self.stage_key(key.stage, "fp32", sources))
                quantize_int8(base, tmp / MODEL_FILE)
            else:
                export_stage(key.stage, key.precision, sources, tmp / MODEL_FILE)
            return {
                "stage": key.stage,
                "precision": key.precision,
                "exporter_version": key.version,
                "opset": OPSET,
                "sources": [str(p) for p in key.sources],
                "sha256": list(key.digests),
                "seconds": round(time.perf_counter() - t0, 2),
            }

        publish(self.root / key.folder_name, build)
        EXPORT_COUNTS[(key.stage, key.precision)] += 1
        log.info("exported %s (%s) in %.1f s", key.stage, key.precision, time.perf_counter() - t0)
        self._remove_stale(key)

    def _remove_stale(self, key: StageKey) -> None:
        """Drop exports of this stage/precision made from the same files with another key."""
        prefix = f"{key.stage}-{key.precision}-"
        for folder in self.root.iterdir():
            if not folder.name.startswith(prefix) or folder.name == key.folder_name:
                continue
            try:
                m = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if [str(p) for p in key.sources] == m.get("sources"):
                shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- exporting


def _dim(name: str, lo: int, hi: int = 1 << 20):
    import torch

    return torch.export.Dim(name, min=lo, max=hi)


def _load_stage_module(stage: str, sources: Sources, dtype):
    """A fresh torch graph module of ``stage`` (the wrappers change dtypes in place)."""
    from voicegui.voices.onnx import graphs as G

    if stage == "content":
        from voicegui.voices.seedvc.content import load_content_encoder

        assert sources.content_dir is not None
        return G.ContentGraph(load_content_encoder(sources.content_dir), dtype)
    if stage in ("lr", "dit_prepare", "dit_step"):
        from voicegui.voices.seedvc.cfm import load_dit_checkpoint

        cfm, lr = load_dit_checkpoint(sources.dit)
        if stage == "lr":
            return G.LengthRegulatorGraph(lr, dtype)
        return (G.DiTPrepareGraph if stage == "dit_prepare" else G.DiTStepGraph)(cfm, dtype)
    if stage == "vocoder":
        from voicegui.voices.seedvc.hift import load_hift

        return G.VocoderGraph(load_hift(sources.hift), dtype)
    if stage == "campplus":
        from voicegui.voices.seedvc.campplus import load_campplus

        return G.CAMPPlusGraph(load_campplus(sources.campplus))
    raise ExportError(f"unknown stage {stage!r}")


def stage_signature(stage: str) -> tuple[tuple, list[str], list[str], tuple]:
    """Example inputs, input names, output names and dynamic shapes of a stage.

    Example sizes differ from each other on purpose: equal example sizes would let the exporter
    tie two independent axes together.
    """
    import torch

    r = torch.randn
    if stage == "content":
        return (r(1, 44100) * 0.1,), ["wav"], ["features"], ({1: _dim("samples", 4000)},)
    if stage == "lr":
        return (
            (r(1, 137, 1024), torch.arange(65, dtype=torch.long)),
            ["content", "index"],
            ["cond"],
            ({1: _dim("frames", 2)}, {0: _dim("out_frames", 2)}),
        )
    if stage == "dit_prepare":
        p, s = _dim("prompt", 2), _dim("source", 2)
        return (
            (r(1, 80, 258), r(1, 258, 384), r(1, 192), r(1, 65, 384)),
            ["prompt_mel", "prompt_cond", "style", "cond"],
            ["frame_const", "style_tok"],
            ({2: p}, {1: p}, None, {1: s}),
        )
    if stage == "dit_step":
        g = _dim("groups", 1, 2)
        return (
            (
                r(1, 80, 65),
                torch.tensor([0.3]),
                torch.tensor([0.1]),
                torch.tensor([0.7]),
                r(2, 323, 384),
                r(2, 1, 384),
            ),
            ["x", "t", "dt", "cfg", "frame_const", "style_tok"],
            ["x_next", "velocity"],
            ({2: _dim("source", 2)}, None, None, None, {0: g, 1: _dim("frames", 4)}, {0: g}),
        )
    if stage == "vocoder":
        return (
            (r(1, 80, 65), torch.zeros(1, 9, 1), r(1, 9, 31 * 256)),
            ["mel", "phase", "noise"],
            ["wav"],
            ({2: _dim("mel_frames", 2)}, None, {2: 256 * _dim("frames", 2, 1 << 16)}),
        )
    if stage == "vocoder_f0":  # parity variant with an explicit f0 contour
        frames = _dim("frames", 2, 1 << 16)
        return (
            (r(1, 80, 65), torch.zeros(1, 9, 1), r(1, 9, 31 * 256), r(1, 31).abs() * 200),
            ["mel", "phase", "noise", "f0"],
            ["wav"],
            ({2: _dim("mel_frames", 2)}, None, {2: 256 * frames}, {1: frames}),
        )
    if stage == "campplus":
        return (r(1, 298, 80),), ["fbank"], ["style"], ({1: _dim("frames", 10)},)
    raise ExportError(f"unknown stage {stage!r}")


# Stages exported with the TorchScript exporter first: CAMPPlus's 52 dense layers take ~40 s
# through torch.export on a small CPU and ~8 s this way, with the same graph numerics. The
# torch.export path remains the fallback (the TorchScript exporter is deprecated upstream).
TORCHSCRIPT_FIRST = ("campplus",)


def export_module(module, stage: str, out: Path) -> None:
    """ONNX export of one stage graph module (torch.export based, see TORCHSCRIPT_FIRST)."""
    import warnings

    import torch

    args, inputs, outputs, dyn = stage_signature(stage)
    module.eval()
    if stage in TORCHSCRIPT_FIRST:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    args,
                    str(out),
                    dynamo=False,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes={
                        name: {axis: f"{name}_{axis}" for axis in spec}
                        for name, spec in zip(inputs, dyn, strict=True)
                        if spec
                    },
                    opset_version=OPSET,
                )
            return
        except Exception as exc:  # removed or failing: the torch.export path below
            log.info("TorchScript export of %s failed (%s); using torch.export", stage, exc)
            for f in out.parent.glob(out.name + "*"):
                f.unlink()
    with warnings.catch_warnings(), _quiet_loggers("onnxscript", "onnx_ir", "torch.onnx"):
        warnings.simplefilter("ignore")
        with torch.no_grad():
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dyn,
                opset_version=OPSET,
                verbose=False,
            )
        if program is None:  # pragma: no cover - only the legacy exporter returns None
            raise ExportError(f"{stage}: the exporter returned no program")
        program.save(str(out), external_data=True)


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """The exporter logs every rewrite (and absent torchvision ops): keep the app log readable."""
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def export_stage(stage: str, precision: str, sources: Sources, out: Path) -> None:
    import torch

    try:
        import onnxscript  # noqa: F401  (the torch exporter needs it)
    except ImportError as exc:
        raise ExportError("exporting to ONNX needs the 'onnx' and 'onnxscript' packages") from exc
    dtype = torch.float16 if precision == "fp16" and stage != "campplus" else torch.float32
    export_module(_load_stage_module(stage, sources, dtype), stage, out)


def quantize_int8(src: Path, out: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (per channel, signed int8 weights)."""
    from onnxruntime.quantization import QuantType

    quantize_weights(src, out, "MatMul", per_channel=True, weight_type=QuantType.QInt8,
                     external_data=True)  # fmt: skip


def quantize_weights(
    src: Path, out: Path, op_type: str, per_channel: bool, weight_type, external_data: bool = False
) -> None:
    """Dynamic quantisation (int8 weights, activations quantised per call) of every ``op_type``
    node's weights in the graph ``src``, written to ``out``."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    # The exporter annotates initializers with shapes in value_info; the quantizer transposes
    # Gemm weights into MatMuls and its shape inference then trips over those stale entries.
    # (The other entries stay: onnxruntime's fusions need the shapes.)
    model = onnx.load(str(src))
    weights = {t.name for t in model.graph.initializer}
    keep = [vi for vi in model.graph.value_info if vi.name not in weights]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph goes to the root logger
    try:
        quantize_dynamic(
            model,
            str(out),
            op_types_to_quantize=[op_type],
            per_channel=per_channel,
            weight_type=weight_type,
            use_external_data_format=external_data,
        )
    finally:
        root.setLevel(level)
