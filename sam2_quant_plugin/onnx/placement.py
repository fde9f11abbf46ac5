"""Graph placement that onnxruntime's CPU EP fuses into int8 kernels.

onnxruntime fuses ``DQ(x u8) , DQ(W s8) -> MatMul`` into ``MatMulIntegerToFloat`` (no output Q needed),
but its earlier ``MatMulAddFusion`` first turns ``MatMul + Add(bias[N])`` into a float ``Gemm``, which
the QDQ fusions then skip. Giving the bias the shape ``[1, N]`` (same broadcast result for inputs of
rank >= 2) keeps MatMul and Add apart, so the int8 fusion happens with default session options. A bias
several Adds share (tied, or identical biases the exporter stored once) is copied for each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

import onnx
from onnx import numpy_helper
from torch import nn

from ..api import QuantizerInfo
from .graph import Graph
from .plan import quantizer_of

log = logging.getLogger(__name__)


@contextlib.contextmanager
def record_input_ranks(model: nn.Module) -> Iterator[dict[str, int]]:
    """While active, record ``layer name -> rank of its input`` for every Linear that runs."""
    ranks: dict[str, int] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):

            def hook(_m: nn.Module, args: tuple, _name: str = name) -> None:
                ranks[_name] = args[0].dim()

            handles.append(mod.register_forward_pre_hook(hook))
    try:
        yield ranks
    finally:
        for h in handles:
            h.remove()


def keep_bias_apart(
    proto: onnx.ModelProto, scopes: Mapping[str, QuantizerInfo], input_ranks: dict[str, int]
) -> int:
    """Reshape 1-D bias constants of ``DQ-weight MatMul -> Add`` to ``[1, N]``; returns layers changed.

    ``scopes`` (:func:`.plan.plan_scopes`) names the weight DQ nodes; ``input_ranks`` (layer -> rank of
    its input, from :func:`record_input_ranks`) guards the reshape: only layers whose input has rank >= 2
    are changed, so output shapes stay the same.
    """
    g = Graph(proto)
    changed = 0
    for mm in [n for n in proto.graph.node if n.op_type == "MatMul"]:
        dq = g.producer(mm.input[1])
        plan = quantizer_of(dq, scopes) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if plan is None or plan.kind != "weight" or input_ranks.get(plan.layer, 0) < 2:
            continue
        users = g.consumers(mm.output[0])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        slot = 1 if add.input[0] == mm.output[0] else 0
        other = add.input[slot]
        bias = g.const(other)  # an initializer, or the exporter's Identity of one (identical biases)
        if bias is None or bias.ndim != 1:
            continue
        row = numpy_helper.from_array(bias.reshape(1, -1), other)
        if g.initializer(other) is None or len(g.consumers(other)) != 1:
            # shared: tied weights, or the exporter's one copy of identical biases (cloned layers, as
            # SAM 2's memory attention at random init): this Add gets a [1, N] copy of its own
            row.name = f"{add.name or mm.output[0]}/bias_row"
            add.input[slot] = row.name
        g.set_initializer(row)
        changed += 1
    log.debug("kept %d bias Add(s) apart from their quantized MatMul", changed)
    return changed
