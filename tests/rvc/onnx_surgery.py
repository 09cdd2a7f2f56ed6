"""Turning the random nodes of an exported synthesizer into graph inputs, so that a graph in an
upstream layout (whose noise is drawn inside, as the files users have) can be run with the
kit's draws: the prior's RandomNormalLike becomes the input ``z_noise``, the sine source's
(inside ``m_source``) ``sine_noise``. Everything else in the graph stays as exported."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def inject_noise_inputs(src: Path, dst: Path) -> list[str]:
    """Write ``src`` with its RandomNormalLike nodes replaced by inputs; returns their names."""
    model = onnx.load(str(src))
    graph = model.graph
    added = []
    keep = []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            keep.append(node)
            continue
        name = "sine_noise" if "m_source" in node.name else "z_noise"
        assert name not in added, f"two random nodes for {name}"
        rank = 3
        dims = [f"{name}_{i}" for i in range(rank)]
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        # every consumer of the random node now reads the input
        for other in graph.node:
            for i, inp in enumerate(other.input):
                if inp == node.output[0]:
                    other.input[i] = name
        added.append(name)
    del graph.node[:]
    graph.node.extend(keep)
    onnx.save(model, str(dst))
    return added
