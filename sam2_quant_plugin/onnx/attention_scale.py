"""Quantized attention written so onnxruntime has no float work left around ``q @ k^T``.

:func:`~sam2_quant_plugin.attention.quantized_sdpa` computes ``softmax(fq_q(q) @ fq_k(k^T) * scale)``, which
the exporter writes as ``Q -> DQ -> MatMul -> Mul(scale)``. onnxruntime fuses the MatMul into
``MatMulIntegerToFloat`` but keeps the ``Mul`` over the whole score tensor (heads x queries x keys floats).
Its float path folds that scale into ``FusedMatMul``; the integer one cannot. And it propagates q's
``QuantizeLinear`` up over every data-movement op before it: in Hiera's pooled blocks that makes the query
``MaxPool`` run on uint8, where onnxruntime has no blocked (NCHWc) kernel (about 5 ms per pool at 512 px
instead of 0.8).

:func:`fold_softmax_scale` moves the scale onto q, ahead of its quantizer:

    q -> Mul(scale) -> Q(s * scale, z) -> DQ(s * scale, z) -> MatMul      (no Mul after the MatMul)

The codes are q's codes (``round(q * c / (s * c)) == round(q / s)`` up to float rounding), the product comes
out already scaled, and the ``Mul`` now runs over q (queries x channels) instead of the scores. That ``Mul``
also stops onnxruntime moving the ``QuantizeLinear`` over the pool, so the pool stays a float NCHWc kernel.
Q and DQ keep one scale between them, as every QDQ consumer expects. Measured in docs/ATTENTION.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..api import QuantizerInfo
from .graph import Graph
from .plan import quantizer_of, scope_of

log = logging.getLogger(__name__)


def _scalar(g: Graph, mul: onnx.NodeProto, product: str) -> float | None:
    """``mul``'s scalar constant factor when its other input is ``product``."""
    if len(mul.input) != 2 or product not in mul.input:
        return None
    value = g.const(mul.input[1 - list(mul.input).index(product)])
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    return float(value.reshape(()))


def _quantize_of(g: Graph, dq: onnx.NodeProto) -> onnx.NodeProto | None:
    """The QuantizeLinear feeding ``dq`` (through the Clip that sub-8-bit ranges add), if it feeds only it."""
    node = g.producer(dq.input[0])
    if node is not None and node.op_type == "Clip":
        if len(g.consumers(node.output[0])) != 1:
            return None
        node = g.producer(node.input[0])
    if node is None or node.op_type != "QuantizeLinear" or len(g.consumers(node.output[0])) != 1:
        return None
    return node


def fold_softmax_scale(proto: onnx.ModelProto, scopes: Mapping[str, QuantizerInfo]) -> int:
    """Move each quantized attention's softmax scale onto q ahead of q's quantizer (in place; see the
    module docstring). Only ``attn_q`` quantizers of ``scopes``' plan whose product is scaled by one scalar
    constant and read by nothing else are touched. Returns the number of attention products rewritten."""
    g = Graph(proto)
    done = 0
    for dq in [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]:
        plan = quantizer_of(dq, scopes)
        if plan is None or plan.kind != "attn_q":
            continue
        users = g.consumers(dq.output[0])
        if len(users) != 1 or users[0].op_type != "MatMul":
            continue
        matmul = users[0]
        after = g.consumers(matmul.output[0])
        if len(after) != 1 or after[0].op_type != "Mul":
            continue
        mul = after[0]
        found = _scalar(g, mul, matmul.output[0])
        q = _quantize_of(g, dq)
        scale = g.const(dq.input[1])
        if found is None or found <= 0 or q is None or scale is None or scale.size != 1:
            continue
        factor = np.float32(found)
        scope = scope_of(dq)
        folded = numpy_helper.from_array((scale * factor).astype(np.float32), f"{plan.layer}.attn_q.scaled")
        by = numpy_helper.from_array(np.array(factor, np.float32), f"{plan.layer}.attn_q.softmax_scale")
        g.set_initializer(folded)
        g.set_initializer(by)
        pre = helper.make_node(
            "Mul", [q.input[0], by.name], [f"{scope}/softmax_scaled"], f"{scope}/SoftmaxScale"
        )
        q.input[0], q.input[1], dq.input[1] = pre.output[0], folded.name, folded.name
        proto.graph.node.insert(list(proto.graph.node).index(q), pre)
        matmul.output[0] = mul.output[0]  # the product is already scaled: its readers read it directly
        proto.graph.node.remove(mul)
        done += 1
    if done:
        g.remove_dead()
        log.info("%d attention product(s): softmax scale moved onto q ahead of its quantizer", done)
    return done
