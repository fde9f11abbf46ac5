"""The quantization plan an exported file carries, and the exact link from graph nodes to that plan.

Export hands lowering the model's quantizers (:func:`sam2_quant_plugin.api.quantizers`). The TorchScript
exporter names each node ``<scope>/<op>``, the scope being the names of the modules being called when the
node was made (``/image_encoder/trunk/blocks.0/attn/qkv/weight_fake_quant``: each module's name in torch's
trace module map, and only modules that were called). :func:`record_scopes` keeps the same stack while
tracing, so each quantizer's scope is *recorded*, and :func:`quantizer_of` is an exact lookup of a node's
scope in that table: names are never parsed, so a module that merely has a ``weight_fake_quant`` child
outside the plan is not taken for a quantized layer, and a layer whose parent was not called is still found.

The file records the plan of the quantizers it holds as JSON in its metadata under ``sam2_quant.plan``:
``{layer: {"weight": {bits, qmin, qmax, signed, granularity[, ch_axis][, group_size]}, "activation": ...}}``;
:func:`quant_ranges` and :func:`weight_bytes` read files through it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import onnx
import torch
from torch import nn

from ..api import QuantizerInfo, is_prepared, quantizers
from ..errors import ExportError
from .graph import Graph, stored_bytes

PLAN_KEY = "sam2_quant.plan"
#: Ops whose presence under a quantizer's scope shows the quantizer was lowered (MatMulNBits after folding).
LOWERED_OPS = ("DequantizeLinear", "MatMulNBits", "Cast")  # Cast: .load_fold's weight-only convs


@dataclass(frozen=True)
class QuantRange:
    """One quantizer as an exported file records it (``kind``: ``"weight"`` | ``"activation"``)."""

    layer: str
    kind: str
    bits: int
    qmin: int
    qmax: int
    signed: bool
    granularity: str
    group_size: int | None = None

    @classmethod
    def from_dict(cls, layer: str, kind: str, d: Mapping[str, Any]) -> QuantRange:
        return cls(
            layer,
            kind,
            int(d["bits"]),
            int(d["qmin"]),
            int(d["qmax"]),
            bool(d["signed"]),
            str(d["granularity"]),
            int(d["group_size"]) if d.get("group_size") else None,
        )


@contextlib.contextmanager
def record_scopes() -> Iterator[dict[nn.Module, set[str]]]:
    """While active (around a TorchScript ONNX export), record the node scope(s) of every module called.

    Mirrors the exporter: a called module whose name is in torch's trace module map opens a scope named
    after it (the part after ``Class::``), and nodes made inside are named ``/``-joined scopes + op.
    """
    recorded: dict[nn.Module, set[str]] = {}
    stack: list[str] = []
    opened: list[bool] = []

    def enter(mod: nn.Module, _args: object) -> None:
        names = torch.jit._trace._trace_module_map if torch._C._get_tracing_state() else None
        name = names.get(mod) if names is not None else None
        opened.append(bool(name))
        if names is None:
            return
        if name:
            stack.append(str(name).partition("::")[2])
            recorded.setdefault(mod, set()).add("/".join(stack))

    def leave(_mod: nn.Module, _args: object, _out: object) -> None:
        if opened.pop():
            stack.pop()

    pre = torch.nn.modules.module.register_module_forward_pre_hook(enter)
    post = torch.nn.modules.module.register_module_forward_hook(leave)
    try:
        yield recorded
    finally:
        pre.remove()
        post.remove()


def plan_scopes(
    infos: Iterable[QuantizerInfo], recorded: Mapping[nn.Module, set[str]]
) -> dict[str, QuantizerInfo]:
    """Node scope -> quantizer, for the quantizers (``infos``) whose module :func:`record_scopes` saw run."""
    return {scope: q for q in infos for scope in recorded.get(q.module, ())}


def scope_of(node: onnx.NodeProto) -> str:
    """The scope in ``node``'s exporter-made name: ``/a/blocks.0/qkv/weight_fake_quant/QuantizeLinear`` ->
    ``/a/blocks.0/qkv/weight_fake_quant``."""
    return node.name.rpartition("/")[0]


def quantizer_of(node: onnx.NodeProto, scopes: Mapping[str, QuantizerInfo]) -> QuantizerInfo | None:
    """The quantizer ``node`` belongs to: an exact lookup of its scope in :func:`plan_scopes`' table."""
    return scopes.get(scope_of(node))


def lowered(proto: onnx.ModelProto, scopes: Mapping[str, QuantizerInfo]) -> list[QuantizerInfo]:
    """The quantizers of ``scopes`` that have a DequantizeLinear / MatMulNBits / Cast node in the graph."""
    seen = {scope_of(n) for n in proto.graph.node if n.op_type in LOWERED_OPS}
    return [q for s, q in scopes.items() if s in seen]


def check_layers_present(
    proto: onnx.ModelProto, model: nn.Module, recorded: Mapping[nn.Module, set[str]], roots: tuple[str, ...]
) -> None:
    """Each quantized layer under ``roots`` that has nodes in this graph must show its quantizers there.

    ``recorded``: :func:`record_scopes` of the trace. Layers with no node in this graph (run by another
    graph, e.g. the decoder's ``conv_s0`` runs in the encoder graph, or pruned because their output is
    unused) are skipped.
    """
    if not is_prepared(model):
        return
    seen = {scope_of(n) for n in proto.graph.node if n.op_type in LOWERED_OPS}
    node_scopes: set[str] = set()
    for node in proto.graph.node:
        parts = scope_of(node).split("/")
        node_scopes.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    missing = [
        f"{q.layer} ({q.kind})"
        for q in quantizers(model).values()
        if q.layer.startswith(roots)
        and recorded.get(model.get_submodule(q.layer), set()) & node_scopes
        and not recorded.get(q.module, set()) & seen
    ]
    if missing:
        raise ExportError(
            f"{len(missing)} quantized layer input(s) were not lowered to QuantizeLinear/DequantizeLinear: "
            + ", ".join(missing)
            + ". Their fake-quant was not traced (module not called in this graph, or replaced)."
        )


def plan_json(infos: Iterable[QuantizerInfo]) -> str:
    """The ``sam2_quant.plan`` metadata value for the quantizers ``infos`` (layers in the given order)."""
    plan: dict[str, dict[str, object]] = {}
    for q in infos:
        plan.setdefault(q.layer, {})[q.kind] = q.to_dict()
    return json.dumps(plan)


def read_plan(proto: onnx.ModelProto) -> dict[str, dict[str, dict[str, Any]]]:
    """The file's ``sam2_quant.plan`` ({} for files without one: float exports, other tools' graphs)."""
    raw = next((p.value for p in proto.metadata_props if p.key == PLAN_KEY), None)
    return json.loads(raw) if raw else {}


def quant_ranges(proto: onnx.ModelProto) -> dict[tuple[str, str], QuantRange]:
    """(layer, kind) -> every quantizer the file holds, as its ``sam2_quant.plan`` metadata records it."""
    return {
        (layer, kind): QuantRange.from_dict(layer, kind, d)
        for layer, kinds in read_plan(proto).items()
        for kind, d in kinds.items()
    }


def weight_bytes(proto: onnx.ModelProto) -> dict[str, int]:
    """Layer -> bytes of its stored integer weight (``<layer>.weight_q`` or MatMulNBits' ``.weight_nbits``).

    Layers of the file's plan only; weights left as float (``qdq``) have no entry.
    """
    g = Graph(proto)
    out = {}
    for layer, kinds in read_plan(proto).items():
        if "weight" not in kinds:
            continue
        init = g.initializer(f"{layer}.weight_q")
        if init is None:
            init = g.initializer(f"{layer}.weight_nbits")
        if init is not None:
            out[layer] = stored_bytes(init)
    return out
