"""Store each distinct float constant of an exported graph once.

The TorchScript exporter folds every use of a buffer into its own constant: SAM 2's memory attention keeps
the same RoPE cos/sin tables in each of its 8 attention modules, and each table reaches the graph through
several folded reshapes and slices, so at 512 px 48 copies of ``[1024, 128]`` float tables made 26 of the
file's 32 MB (the int8 weights are 6 MB); at 1024 px each copy is 4x larger. :func:`dedupe_constants` keeps
one initializer per distinct value (same type, shape and bytes) and points every consumer at it; float
tensors only, so quantized weights, scales and zero points are never touched.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

log = logging.getLogger(__name__)

_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
MIN_BYTES = 4096  # smaller constants cost less than the bookkeeping is worth


def _key(t: TensorProto, min_bytes: int) -> tuple[int, tuple[int, ...], bytes] | None:
    if t.data_type not in _FLOATS or t.data_location == TensorProto.EXTERNAL:
        return None
    data = np.ascontiguousarray(numpy_helper.to_array(t)).tobytes()
    if len(data) < min_bytes:
        return None
    return t.data_type, tuple(t.dims), data


def _rename_inputs(graph: onnx.GraphProto, rename: dict[str, str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        for attr in node.attribute:  # subgraphs (If / Loop / Scan) see the outer names too
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _rename_inputs(sub, rename)


def dedupe_constants(proto: onnx.ModelProto, min_bytes: int = MIN_BYTES) -> int:
    """Keep one copy of each distinct float constant (initializer or ``Constant`` node) of at least
    ``min_bytes``, in place; returns the bytes saved. Graph inputs and outputs are left as they are."""
    g = proto.graph
    protected = {i.name for i in g.input} | {o.name for o in g.output}
    canon: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    rename: dict[str, str] = {}
    saved = 0
    kept = []
    for init in g.initializer:
        key = None if init.name in protected else _key(init, min_bytes)
        if key is not None and key in canon:
            rename[init.name] = canon[key]
            saved += len(key[2])
            continue
        if key is not None:
            canon[key] = init.name
        kept.append(init)
    nodes = []
    for node in g.node:
        value = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if value is not None and value.name == "value" and node.output[0] not in protected:
            key = _key(value.t, min_bytes)
            if key is not None:
                if key in canon:
                    rename[node.output[0]] = canon[key]
                    saved += len(key[2])
                else:  # the first copy becomes an initializer under the node's output name
                    init = TensorProto()
                    init.CopyFrom(value.t)
                    init.name = node.output[0]
                    kept.append(init)
                    canon[key] = init.name
                continue
        nodes.append(node)
    if not rename:
        return 0
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.node[:]
    g.node.extend(nodes)
    _rename_inputs(g, rename)
    log.info("dedupe: %d repeated float constant(s) stored once, %.1f MB saved", len(rename), saved / 1e6)
    return saved
