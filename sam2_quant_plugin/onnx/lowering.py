"""Post-processing of exported graphs: fold fake-quantized weights into integer initializers, per the plan.

The exporter writes every fake-quantized weight as ``W(float) -> QuantizeLinear -> [Clip] ->
DequantizeLinear [-> Transpose]``. Folding replaces that chain by ``W(int8 | int4) -> DequantizeLinear``
(the Transpose applied to the codes, the axis moved with it): a file 4x (int8) or ~8x (int4) smaller for
those weights, and the form onnxruntime's CPU EP fuses into int8 kernels. Weight-only conv weights, which no
integer kernel takes, are then written as ``codes -> Cast -> Mul(scale)`` (:mod:`.load_fold`): onnxruntime
folds those to float at session load instead of dequantizing at every call. Which chains are folded, and
their ranges and bits, come from the plan export hands in (:func:`.plan.plan_scopes`); the graph's own
range (Clip bounds, code type) is only checked against it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..api import QuantizerInfo
from ..errors import ExportError
from .graph import Graph, stored_bytes
from .load_fold import fold_at_load
from .placement import keep_bias_apart
from .plan import quantizer_of

log = logging.getLogger(__name__)
WEIGHT_FORMATS = ("qdq", "int8", "int4", "matmulnbits")


def _full_range(dtype: int) -> tuple[int, int]:
    return {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255)}.get(dtype, (-8, 7))


def _graph_range(g: Graph, clip: onnx.NodeProto | None, zp: np.ndarray) -> tuple[int, int]:
    if clip is not None:
        lo, hi = (int(g.const(n)) for n in clip.input[1:3])
        return lo, hi
    return _full_range(_dtype_of(zp))


def _codes(w: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    shape = [1] * w.ndim
    if scale.size > 1:
        shape[axis] = -1
    s = scale.reshape(shape).astype(np.float32)
    z = zp.reshape(shape).astype(np.float32)
    return np.clip(np.rint(w / s) + z, lo, hi)


def lower_weights(
    proto: onnx.ModelProto,
    weight_format: str,
    scopes: Mapping[str, QuantizerInfo],
    input_ranks: dict[str, int] | None = None,
    nbits_widths: Sequence[int] = (2, 4, 8),
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Fold the weight Q->[Clip]->DQ chains of the plan's quantizers; returns the graph and bytes per layer.

    ``scopes`` (:func:`.plan.plan_scopes`) says which nodes belong to which quantizer. 'qdq' leaves the float
    weights; 'int8' stores codes as int8/uint8; 'int4' stores ranges that fit [-8, 7] as INT4 (opset 21) and
    the rest as int8; 'matmulnbits' folds as int8 then rewrites MatMul weights to com.microsoft MatMulNBits of
    the ``nbits_widths`` allowed (see :mod:`.matmulnbits`). ``input_ranks`` (Linear layer -> input rank,
    recorded while tracing) enables :func:`.placement.keep_bias_apart`. Raises :class:`ExportError` where the
    graph's range disagrees with the plan's.
    """
    if weight_format not in WEIGHT_FORMATS:
        raise ExportError(f"weight_format={weight_format!r} is unknown; use one of {WEIGHT_FORMATS}")
    sizes: dict[str, int] = {}
    if weight_format == "qdq":
        return proto, sizes
    g = Graph(proto)
    for dq in [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]:
        plan = quantizer_of(dq, scopes)
        chain = g.weight_chain(dq) if plan is not None and plan.kind == "weight" else None
        if plan is None or chain is None:
            continue
        q, clip, w = chain
        scale, zp = g.const(q.input[1]), g.const(q.input[2])
        axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
        lo, hi = plan.qmin, plan.qmax
        if (graph_range := _graph_range(g, clip, zp)) != (lo, hi):
            raise ExportError(
                f"{plan.layer}: the graph clips its weight codes to {list(graph_range)} but the plan says "
                f"[{lo}, {hi}] ({plan.bits} bits); export the frozen model as it is"
            )
        codes = _codes(w, scale, zp, axis, lo, hi)
        perm = g.sole_transpose(dq)
        if perm is not None:
            codes = codes.transpose(perm)
            axis = perm.index(axis)
        int4 = weight_format == "int4" and lo >= -8 and hi <= 7
        tensor = _int_tensor(f"{plan.layer}.weight_q", codes, zp, int4)
        zp_tensor = _int_tensor(f"{plan.layer}.weight_zp", zp, zp, int4)
        g.set_initializer(tensor)
        g.set_initializer(zp_tensor)
        dq.input[0], dq.input[2] = tensor.name, zp_tensor.name
        if scale.size > 1:
            _set_axis(dq, axis)
        if perm is not None:
            g.bypass_transpose(dq)
        sizes[plan.layer] = stored_bytes(tensor)
    g.remove_dead()
    keep_bias_apart(proto, scopes, input_ranks or {})
    if weight_format == "matmulnbits":
        from .matmulnbits import to_matmulnbits

        proto, nbits_sizes = to_matmulnbits(proto, scopes, widths=nbits_widths)
        sizes.update(nbits_sizes)
    fold_at_load(proto, scopes)
    log.info("folded %d weight(s) into %s initializers", len(sizes), weight_format)
    return proto, sizes


def _dtype_of(zp: np.ndarray) -> int:
    return TensorProto.UINT8 if zp.dtype == np.uint8 else TensorProto.INT8


def _int_tensor(name: str, values: np.ndarray, zp: np.ndarray, int4: bool) -> TensorProto:
    if int4:
        # Packed two codes per byte in raw_data. helper.make_tensor(list) would store one varint per
        # byte pair in int32_data: ~1.5x the packed size on disk.
        dtype = ml_dtypes.int4 if zp.dtype == np.int8 else ml_dtypes.uint4
        return numpy_helper.from_array(values.astype(np.int64).astype(dtype), name)
    return numpy_helper.from_array(values.astype(zp.dtype), name)


def _set_axis(node: onnx.NodeProto, axis: int) -> None:
    for a in node.attribute:
        if a.name == "axis":
            a.i = axis
            return
    node.attribute.append(helper.make_attribute("axis", axis))
