"""Weight-only convolutions written in a form onnxruntime turns into float weights when a session loads.

A convolution whose input is not quantized (weight-only: every W8A8 recipe's patch embedding and neck, the
memory encoder's convolutions) has no integer kernel to run on. onnxruntime's CPU EP then runs
``W(int codes) -> DequantizeLinear -> Conv`` as written: the DequantizeLinear at every call, and the Conv
without its blocked NCHWc layout, which needs a constant weight. onnxruntime never constant-folds
DequantizeLinear (it keeps them for its QDQ fusions), but it does fold ``Cast``, ``Sub`` and ``Mul`` on
initializers. :func:`fold_at_load` therefore writes such a weight as ``Cast(codes) [-> Sub(zero point)] ->
Mul(scale)``: the file keeps the integer codes (same bytes), and the session holds the float weight, which
is exactly what DequantizeLinear would compute ((q - z) * s in float32, integers exact).

MatMul / Gemm weights are left alone: onnxruntime >= 1.2x rewrites a weight-only ``DequantizeLinear ->
MatMul`` into its own ``MatMulNBits`` kernel (``session.qdq_matmulnbits_accuracy_level``, default 4: int8
activations per block of 32), which is faster than a float MatMul on the CPUs measured. The price: a
session holds these convolutions' weights in float32 (4x their int8 bytes) where the DequantizeLinear form
held only a per-call float copy. :func:`.fp16.fold_constant_weights` folds them back for tools that want float
initializers (the fp16 conversion).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..api import QuantizerInfo
from .graph import Graph
from .plan import quantizer_of, scope_of

log = logging.getLogger(__name__)

#: Layer ops with no weight-only fusion in onnxruntime: their DequantizeLinear would run at every call.
CONV_OPS = ("Conv", "ConvTranspose")
#: Shape-only ops that may sit between a weight's DequantizeLinear and its conv (per-group weights).
_PASS_THROUGH = ("Reshape",)
#: The ops :func:`fold_at_load` writes (and :func:`.fp16.fold_constant_weights` folds back).
LOAD_FOLD_OPS = ("Cast", "Sub", "Mul")


def _conv_users(g: Graph, name: str) -> list[tuple[onnx.NodeProto, int]] | None:
    """(node, input slot) of every conv reading ``name``, through Reshapes; None if any other op reads it."""
    out: list[tuple[onnx.NodeProto, int]] = []
    for user in g.consumers(name):
        if user.op_type in _PASS_THROUGH and user.input[0] == name:
            deeper = _conv_users(g, user.output[0])
            if deeper is None:
                return None
            out += deeper
        elif user.op_type in CONV_OPS and list(user.input).index(name) == 1:
            out.append((user, 1))
        else:
            return None
    return out


def _weight_only(g: Graph, dq: onnx.NodeProto) -> bool:
    """True when ``dq`` feeds only convolutions' weights, none of whose data inputs is dequantized."""
    users = _conv_users(g, dq.output[0])
    if not users:
        return False
    for conv, _slot in users:
        src = g.producer(conv.input[0])
        if src is not None and src.op_type == "DequantizeLinear":
            return False  # a QDQ conv: onnxruntime fuses it into QLinearConv; keep its DequantizeLinear
    return True


def _broadcast(values: np.ndarray, rank: int, axis: int) -> np.ndarray:
    if values.size == 1:
        return values.reshape(())
    shape = [1] * rank
    shape[axis] = -1
    return values.reshape(shape)


def fold_at_load(proto: onnx.ModelProto, scopes: Mapping[str, QuantizerInfo]) -> int:
    """Rewrite the weight-only conv weights of ``scopes``' plan as ``Cast -> [Sub ->] Mul`` (in place).

    Only DequantizeLinear nodes of weight quantizers whose codes are initializers are touched; blocked
    DequantizeLinear (``block_size``) is left alone. Node names keep the quantizer's scope, so
    :func:`.plan.lowered` still finds the layer. Returns the number of weights rewritten.
    """
    g = Graph(proto)
    done = 0
    for dq in [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]:
        plan = quantizer_of(dq, scopes)
        attrs = {a.name: a.i for a in dq.attribute}
        if plan is None or plan.kind != "weight" or attrs.get("block_size", 0):
            continue
        codes = g.initializer(dq.input[0])
        scale = g.const(dq.input[1])
        zp = g.const(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        if codes is None or scale is None or not _weight_only(g, dq):
            continue
        rank = len(codes.dims)
        axis = attrs.get("axis", 1) % max(rank, 1)
        scope = scope_of(dq)
        nodes = [
            helper.make_node(
                "Cast", [codes.name], [f"{scope}/codes_f32"], f"{scope}/Cast", to=TensorProto.FLOAT
            )
        ]
        value = nodes[0].output[0]
        if zp is not None and np.any(zp != 0):
            z = numpy_helper.from_array(
                _broadcast(zp.astype(np.float32), rank, axis), f"{plan.layer}.zero_point_f32"
            )
            g.set_initializer(z)
            nodes.append(helper.make_node("Sub", [value, z.name], [f"{scope}/centred"], f"{scope}/Sub"))
            value = nodes[-1].output[0]
        s = numpy_helper.from_array(
            _broadcast(scale.astype(np.float32), rank, axis), f"{plan.layer}.scale_f32"
        )
        g.set_initializer(s)
        nodes.append(helper.make_node("Mul", [value, s.name], [dq.output[0]], f"{scope}/Mul"))
        at = list(proto.graph.node).index(dq)
        proto.graph.node.remove(dq)
        for i, node in enumerate(nodes):
            proto.graph.node.insert(at + i, node)
        done += 1
    if done:
        g.remove_dead()
        log.info(
            "%d weight-only conv weight(s) written as Cast -> Mul, folded to float when a session loads", done
        )
    return done
