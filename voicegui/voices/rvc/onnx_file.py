"""What an ONNX file says about itself, read without the onnx package and without loading it.

An ``.onnx`` file is one protobuf ``ModelProto``. Walking its fields on disk (seeking past the
weights instead of reading them) gives, in a few milliseconds even for a large file:
``metadata_props`` (where w-okada's and deiteris' exporters store a JSON ``metadata`` entry),
the graph's inputs with their shapes, and the strides of its ``ConvTranspose`` nodes (an RVC
decoder's upsampling, from which its sample rate follows). A field that runs past the end of the
file means the file is truncated; wire data no ModelProto has means it is not ONNX at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
MODEL_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}  # ModelProto's field numbers
MAX_TEXT = 16 << 20  # metadata values and names; anything longer is not what we look for


class OnnxFileError(ValueError):
    """The file is not an ONNX model, or is damaged or truncated."""


@dataclass
class OnnxSummary:
    metadata: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, tuple[int | str, ...]] = field(default_factory=dict)  # dims; str: symbolic
    outputs: list[str] = field(default_factory=list)
    transpose_strides: list[int] = field(default_factory=list)  # ConvTranspose, graph order
    producer: str = ""
    opset: int = 0
    nodes: int = 0


class _Walker:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.f.read(1)
            if not b:
                raise OnnxFileError("the file is truncated")
            result |= (b[0] & 0x7F) << shift
            if b[0] < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise OnnxFileError("it is not an ONNX model (malformed number)")

    def fields(self, end: int):
        """Yield (number, wire type, value); for LENGTH fields the value is (start, length) and
        the walk continues after the field whatever the caller read meanwhile."""
        f = self.f
        while f.tell() < end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise OnnxFileError("it is not an ONNX model (field number 0)")
            if wire == VARINT:
                yield number, wire, self.varint()
            elif wire == FIXED64:
                self._skip(8, end)
                yield number, wire, None
            elif wire == FIXED32:
                self._skip(4, end)
                yield number, wire, None
            elif wire == LENGTH:
                n = self.varint()
                start = f.tell()
                if start + n > end:
                    raise OnnxFileError(
                        "the file is truncated" if end == self.size else "the file is damaged"
                    )
                yield number, wire, (start, n)
                f.seek(start + n)
            else:
                raise OnnxFileError(f"it is not an ONNX model (wire type {wire})")
        if f.tell() != end:
            raise OnnxFileError("the file is damaged (a field overruns its message)")

    def _skip(self, n: int, end: int) -> None:
        if self.f.tell() + n > end:
            raise OnnxFileError("the file is truncated")
        self.f.seek(n, 1)

    def text(self, span: tuple[int, int], limit: int = MAX_TEXT) -> str:
        start, n = span
        if n > limit:
            return ""
        self.f.seek(start)
        return self.f.read(n).decode("utf-8", errors="replace")


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def read(path: str | Path) -> OnnxSummary:
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise OnnxFileError("the file is empty")
    out = OnnxSummary()
    graphs = 0
    with path.open("rb") as f:
        w = _Walker(f, size)
        for number, wire, value in w.fields(size):
            if number not in MODEL_FIELDS:
                raise OnnxFileError("it is not an ONNX model")
            if number == 7 and wire == LENGTH:
                graphs += 1
                _graph(w, value, out)
            elif number == 14 and wire == LENGTH:
                key, val = _entry(w, value)
                out.metadata[key] = val
            elif number == 2 and wire == LENGTH:
                out.producer = w.text(value, 1024)
            elif number == 8 and wire == LENGTH:
                out.opset = max(out.opset, _opset(w, value))
    if graphs != 1:
        raise OnnxFileError("it is not an ONNX model (no graph)")
    return out


def _entry(w: _Walker, span: tuple[int, int]) -> tuple[str, str]:
    key = value = ""
    start, n = span
    for number, wire, v in w.fields(start + n):
        if wire == LENGTH and number == 1:
            key = w.text(v)
        elif wire == LENGTH and number == 2:
            value = w.text(v)
    return key, value


def _opset(w: _Walker, span: tuple[int, int]) -> int:
    start, n = span
    version, domain = 0, ""
    for number, wire, v in w.fields(start + n):
        if number == 1 and wire == LENGTH:
            domain = w.text(v, 256)
        elif number == 2 and wire == VARINT:
            version = v
    return version if domain in ("", "ai.onnx") else 0


def _graph(w: _Walker, span: tuple[int, int], out: OnnxSummary) -> None:
    start, n = span
    for number, wire, v in w.fields(start + n):
        if wire != LENGTH:
            continue
        if number == 1:  # node
            out.nodes += 1
            op, strides = _node(w, v)
            if op == "ConvTranspose" and strides:
                out.transpose_strides.append(strides[0])
        elif number == 11:  # graph input
            name, dims = _value_info(w, v)
            if name:
                out.inputs[name] = dims
        elif number == 12:
            name, _ = _value_info(w, v)
            out.outputs.append(name)


def _node(w: _Walker, span: tuple[int, int]) -> tuple[str, list[int]]:
    start, n = span
    op, strides = "", []
    for number, wire, v in w.fields(start + n):
        if number == 4 and wire == LENGTH:
            op = w.text(v, 256)
        elif number == 5 and wire == LENGTH:
            name, ints = _attribute(w, v)
            if name == "strides":
                strides = ints
    return op, strides


def _attribute(w: _Walker, span: tuple[int, int]) -> tuple[str, list[int]]:
    start, n = span
    name, ints = "", []
    for number, wire, v in w.fields(start + n):
        if number == 1 and wire == LENGTH:
            name = w.text(v, 256)
        elif number == 8 and wire == VARINT:
            ints.append(_int64(v))
        elif number == 8 and wire == LENGTH:  # packed
            s, m = v
            w.f.seek(s)
            while w.f.tell() < s + m:
                ints.append(_int64(w.varint()))
    return name, ints


def _value_info(w: _Walker, span: tuple[int, int]) -> tuple[str, tuple[Any, ...]]:
    start, n = span
    name, dims = "", ()
    for number, wire, v in w.fields(start + n):
        if number == 1 and wire == LENGTH:
            name = w.text(v, 4096)
        elif number == 2 and wire == LENGTH:
            dims = _tensor_dims(w, v)
    return name, dims


def _tensor_dims(w: _Walker, span: tuple[int, int]) -> tuple[Any, ...]:
    start, n = span
    for number, wire, v in w.fields(start + n):
        if number == 1 and wire == LENGTH:  # TypeProto.tensor_type
            s, m = v
            for num2, wire2, v2 in w.fields(s + m):
                if num2 == 2 and wire2 == LENGTH:  # shape
                    return _shape(w, v2)
    return ()


def _shape(w: _Walker, span: tuple[int, int]) -> tuple[Any, ...]:
    start, n = span
    dims: list[Any] = []
    for number, wire, v in w.fields(start + n):
        if number == 1 and wire == LENGTH:
            s, m = v
            dim: Any = "?"
            for num2, wire2, v2 in w.fields(s + m):
                if num2 == 1 and wire2 == VARINT:
                    dim = _int64(v2)
                elif num2 == 2 and wire2 == LENGTH:
                    dim = w.text(v2, 256) or "?"
            dims.append(dim)
    return tuple(dims)
