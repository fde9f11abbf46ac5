"""fp16 variant of a float or weight-only ONNX graph (onnxruntime's float16 converter, float32 I/O kept).

Weight-only graphs convert too: ``MatMulNBits`` takes fp16 activations and fp16 block scales, the form
onnxruntime's CUDA EP runs fastest, and convolution weights (``int codes -> DequantizeLinear``, or the
``Cast -> Mul`` of :mod:`.load_fold`) are folded into fp16 initializers first, so the graph is the fp16
float graph with MatMul swapped for MatMulNBits and nothing more: no DequantizeLinear + Cast pair per conv
and run. Those weights keep their quantized values; their integer range is readable from
the float32 graph written beside it. Graphs that quantize activations (a QuantizeLinear on a computed
tensor) are refused: their int8 kernels are CPU kernels and their scales must stay float32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ExportError
from ..io.atomic import atomic_write
from .graph import Graph
from .load_fold import LOAD_FOLD_OPS

log = logging.getLogger(__name__)

#: Ops left in float32: quantization ops need float32 scales, and LayerNorm/Softmax reductions are safer.
KEEP_FP32 = ["QuantizeLinear", "DequantizeLinear", "Clip", "Range"]


def _dequantize(codes: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int) -> np.ndarray:
    shape = [1] * codes.ndim
    if scale.size > 1:
        shape[axis] = -1
    z = 0.0 if zp is None else zp.astype(np.float32).reshape(shape)
    return ((codes.astype(np.float32) - z) * scale.astype(np.float32).reshape(shape)).astype(np.float32)


def _constant_value(node: onnx.NodeProto, values: list[np.ndarray | None]) -> np.ndarray | None:
    """The float32 value of a weight node whose inputs are all constants; None when it is not one."""
    if any(v is None for name, v in zip(node.input, values) if name):
        return None  # an input is computed
    vals = [v for v in values if v is not None]  # optional inputs left empty are skipped
    attrs = {a.name: a.i for a in node.attribute}
    if node.op_type == "DequantizeLinear":
        if attrs.get("block_size", 0):
            return None  # blocked: left alone
        zp = vals[2] if len(vals) > 2 else None
        return _dequantize(vals[0], vals[1], zp, attrs.get("axis", 1) % max(vals[0].ndim, 1))
    if node.op_type == "Cast":
        return vals[0].astype(np.float32) if attrs.get("to") == onnx.TensorProto.FLOAT else None
    if any(v.dtype.kind != "f" for v in vals):
        return None  # integer arithmetic (shapes): not a weight
    return np.asarray(vals[0] - vals[1] if node.op_type == "Sub" else vals[0] * vals[1], dtype=np.float32)


def fold_constant_weights(proto: onnx.ModelProto) -> int:
    """Replace every weight node whose inputs are all constants by a float32 initializer (in place): the
    DequantizeLinear this package writes (per-tensor and per-axis; blocked ones are left alone) and the
    float ``Cast`` / ``Sub`` / ``Mul`` chains of :func:`.load_fold.fold_at_load`. Returns nodes folded."""
    g = Graph(proto)
    n = 0
    for node in [x for x in proto.graph.node if x.op_type in ("DequantizeLinear", *LOAD_FOLD_OPS)]:
        value = _constant_value(node, [g.const(i) if i else None for i in node.input])
        if value is None:
            continue
        weight = numpy_helper.from_array(value, node.output[0])
        weight.doc_string = node.doc_string
        g.set_initializer(weight)
        proto.graph.node.remove(node)
        n += 1
    g.remove_dead()
    return n


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an fp16 copy of ``src`` to ``dst`` (keep_io_types: callers still feed float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(src))
    consts = {t.name for t in proto.graph.initializer} | {
        o for n in proto.graph.node if n.op_type == "Constant" for o in n.output
    }
    act_q = [n.name for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in consts]
    if act_q:
        raise ExportError(
            f"{src} quantizes activations ({len(act_q)} QuantizeLinear node(s), e.g. {act_q[0]!r}): fp16 "
            "conversion is for float or weight-only graphs. Fix: use a weight-only recipe (activation: "
            "null) with weight_format 'matmulnbits' for CUDA, or export without --fp16."
        )
    folded = fold_constant_weights(proto)
    if folded:
        log.info("folded %d constant DequantizeLinear weight(s) into float initializers", folded)
    half = convert_float_to_float16(proto, keep_io_types=True, op_block_list=KEEP_FP32)
    Graph(half).topological_sort()  # the converter appends its input casts at the end
    onnx.checker.check_model(half)
    path = atomic_write(dst, lambda tmp: onnx.save(half, str(tmp)))
    log.info("wrote fp16 graph %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
