"""Post-processing of exported graphs: read quant ranges per layer, fold weights into integer initializers.

The exporter writes every fake-quantized weight as ``W(float) -> QuantizeLinear -> [Clip] ->
DequantizeLinear [-> Transpose]``. Folding replaces that chain by ``W(int8 | int4) -> DequantizeLinear``
(the Transpose applied to the codes, the axis moved with it): a file 4x (int8) or ~8x (int4) smaller for
those weights, and the form onnxruntime's CPU EP fuses into int8 kernels. Folded DequantizeLinear nodes
keep their range in ``doc_string`` (``sam2_quant range=[lo,hi]``) so :func:`quant_ranges` still reads it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from ..api import STATE_ATTR
from ..errors import ExportError
from .graph import Graph
from .placement import keep_bias_apart

log = logging.getLogger(__name__)
WEIGHT_FORMATS = ("qdq", "int8", "int4", "matmulnbits")
KINDS = {"weight_fake_quant": "weight", "input_fake_quant": "activation"}
_DOC = re.compile(r"sam2_quant range=\[(-?\d+),(-?\d+)\]")


@dataclass(frozen=True)
class QuantRange:
    layer: str
    kind: str  # "weight" | "activation"
    qmin: int
    qmax: int

    @property
    def bits(self) -> int:
        return (self.qmax - self.qmin).bit_length()


def layer_of(node_name: str) -> tuple[str, str] | None:
    """``/model/image_encoder/.../qkv/weight_fake_quant/QuantizeLinear`` -> (layer name, 'weight')."""
    parts = [p for p in node_name.split("/") if p]
    for i, p in enumerate(parts):
        if p in KINDS:
            scope = parts[1:i] if parts and parts[0] == "model" else parts[:i]
            return ".".join(scope), KINDS[p]
    return None


def _full_range(dtype: int) -> tuple[int, int]:
    return {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255)}.get(dtype, (-8, 7))


def quant_ranges(proto: onnx.ModelProto) -> dict[tuple[str, str], QuantRange]:
    """(layer, kind) -> integer range of every quantizer found in the graph (Q->Clip->DQ or folded DQ)."""
    g = Graph(proto)
    out: dict[tuple[str, str], QuantRange] = {}
    for node in proto.graph.node:
        if node.op_type not in ("DequantizeLinear", "MatMulNBits") or (key := layer_of(node.name)) is None:
            continue
        if m := _DOC.search(node.doc_string):
            lo, hi = int(m.group(1)), int(m.group(2))
        else:
            prev = g.producer(node.input[0])
            if prev is not None and prev.op_type == "Clip":
                lo, hi = (int(g.const(n)) for n in prev.input[1:3])
            else:
                zp = g.const(node.input[2]) if len(node.input) > 2 else None
                dtype = TensorProto.UINT8 if zp is None or zp.dtype == np.uint8 else TensorProto.INT8
                lo, hi = _full_range(dtype)
        out[key] = QuantRange(key[0], key[1], lo, hi)
    return out


def check_layers_present(proto: onnx.ModelProto, model: nn.Module, roots: tuple[str, ...]) -> None:
    """Each quantized layer under ``roots`` that has nodes in this graph must show its quantizers there.

    Layers with no node in this graph (run by another graph, e.g. the decoder's ``conv_s0`` runs in the
    encoder graph, or pruned because their output is unused) are skipped.
    """
    state = getattr(model, STATE_ATTR, None)
    if state is None:
        return
    found = quant_ranges(proto)
    scopes = set()
    for node in proto.graph.node:
        parts = [p for p in node.name.split("/") if p][:-1]
        parts = parts[1:] if parts and parts[0] == "model" else parts
        scopes.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    missing = []
    for name, plan in state.plans.items():
        if not name.startswith(roots) or name not in scopes:
            continue
        for kind, spec in (("weight", plan.weight), ("activation", plan.activation)):
            if spec is not None and (name, kind) not in found:
                missing.append(f"{name} ({kind})")
    if missing:
        raise ExportError(
            f"{len(missing)} quantized layer input(s) were not lowered to QuantizeLinear/DequantizeLinear: "
            + ", ".join(missing)
            + ". Their fake-quant was not traced (module not called in this graph, or replaced)."
        )


def _codes(w: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    shape = [1] * w.ndim
    if scale.size > 1:
        shape[axis] = -1
    s = scale.reshape(shape).astype(np.float32)
    z = zp.reshape(shape).astype(np.float32)
    return np.clip(np.rint(w / s) + z, lo, hi)


def lower_weights(
    proto: onnx.ModelProto, weight_format: str, input_ranks: dict[str, int] | None = None
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Fold weight Q->[Clip]->DQ chains per ``weight_format``; returns the graph and bytes per layer.

    'qdq' leaves the float weights; 'int8' stores codes as int8/uint8; 'int4' stores ranges that fit
    [-8, 7] as INT4 (opset 21) and the rest as int8; 'matmulnbits' folds as int8 then rewrites MatMul
    weights to com.microsoft MatMulNBits (see :mod:`.matmulnbits`). ``input_ranks`` (Linear layer ->
    input rank, recorded while tracing) enables :func:`.placement.keep_bias_apart`.
    """
    if weight_format not in WEIGHT_FORMATS:
        raise ExportError(f"weight_format={weight_format!r} is unknown; use one of {WEIGHT_FORMATS}")
    sizes: dict[str, int] = {}
    if weight_format == "qdq":
        return proto, sizes
    g = Graph(proto)
    for dq in [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]:
        key = layer_of(dq.name)
        if key is None or key[1] != "weight":
            continue
        chain = g.weight_chain(dq)
        if chain is None:
            continue
        q, clip, w = chain
        scale, zp = g.const(q.input[1]), g.const(q.input[2])
        axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
        lo, hi = (int(g.const(n)) for n in clip.input[1:3]) if clip else _full_range(_dtype_of(zp))
        codes = _codes(w, scale, zp, axis, lo, hi)
        perm = g.sole_transpose(dq)
        if perm is not None:
            codes = codes.transpose(perm)
            axis = perm.index(axis)
        int4 = weight_format == "int4" and lo >= -8 and hi <= 7
        tensor = _int_tensor(f"{key[0]}.weight_q", codes, zp, int4)
        zp_tensor = _int_tensor(f"{key[0]}.weight_zp", zp, zp, int4)
        g.set_initializer(tensor)
        g.set_initializer(zp_tensor)
        dq.input[0], dq.input[2] = tensor.name, zp_tensor.name
        if scale.size > 1:
            _set_axis(dq, axis)
        dq.doc_string = f"sam2_quant range=[{lo},{hi}]"
        if perm is not None:
            g.bypass_transpose(dq)
        sizes[key[0]] = stored_bytes(tensor)
    g.remove_dead()
    keep_bias_apart(proto, input_ranks or {})
    if weight_format == "matmulnbits":
        from .matmulnbits import to_matmulnbits

        proto, nbits_sizes = to_matmulnbits(proto)
        sizes.update(nbits_sizes)
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


def stored_bytes(tensor: TensorProto) -> int:
    """Bytes an initializer takes in the file's tensor payload (packed sub-byte types count half a byte)."""
    if tensor.raw_data:
        return len(tensor.raw_data)
    return len(tensor.SerializeToString())


def _set_axis(node: onnx.NodeProto, axis: int) -> None:
    for a in node.attribute:
        if a.name == "axis":
            a.i = axis
            return
    node.attribute.append(helper.make_attribute("axis", axis))


def weight_bytes(proto: onnx.ModelProto) -> dict[str, int]:
    """Layer -> bytes of its stored weight (integer initializer feeding the layer's weight DQ)."""
    g = Graph(proto)
    out = {}
    for node in proto.graph.node:
        key = layer_of(node.name)
        if key is None or key[1] != "weight" or node.op_type != "DequantizeLinear":
            continue
        init = g.initializer(node.input[0])
        if init is not None:
            out[key[0]] = stored_bytes(init)
    return out
