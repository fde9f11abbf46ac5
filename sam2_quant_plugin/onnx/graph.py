"""A small mutable view of an ONNX graph: producers, consumers, constants, dead-node removal."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def stored_bytes(tensor: TensorProto) -> int:
    """Bytes an initializer takes in the file's tensor payload (packed sub-byte types count half a byte)."""
    if tensor.raw_data:
        return len(tensor.raw_data)
    return len(tensor.SerializeToString())


class Graph:
    """Helpers over ``proto.graph``, edited in place. Lookups are recomputed after each edit."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self.graph = proto.graph

    def initializer(self, name: str) -> TensorProto | None:
        return next((t for t in self.graph.initializer if t.name == name), None)

    def set_initializer(self, tensor: TensorProto) -> None:
        old = self.initializer(tensor.name)
        if old is not None:
            self.graph.initializer.remove(old)
        self.graph.initializer.append(tensor)

    def producer(self, name: str) -> onnx.NodeProto | None:
        return next((n for n in self.graph.node if name in n.output), None)

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if name in n.input]

    def const(self, name: str) -> np.ndarray | None:
        """Value of an initializer or a Constant node's output; None if ``name`` is computed."""
        init = self.initializer(name)
        if init is not None:
            return numpy_helper.to_array(init)
        node = self.producer(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        if node is not None and node.op_type == "Identity":  # the exporter's de-duplicated constants
            return self.const(node.input[0])
        return None

    def weight_chain(
        self, dq: onnx.NodeProto
    ) -> tuple[onnx.NodeProto, onnx.NodeProto | None, np.ndarray] | None:
        """(QuantizeLinear, Clip or None, float weight) when ``dq`` dequantizes a quantized constant."""
        prev = self.producer(dq.input[0])
        clip = None
        if prev is not None and prev.op_type == "Clip":
            clip, prev = prev, self.producer(prev.input[0])
        if prev is None or prev.op_type != "QuantizeLinear":
            return None
        w = self.const(prev.input[0])
        if w is None or w.dtype.kind != "f":
            return None
        return prev, clip, w

    def _graph_outputs(self) -> set[str]:
        return {o.name for o in self.graph.output}

    def sole_transpose(self, node: onnx.NodeProto) -> list[int] | None:
        """The perm of the single Transpose consuming ``node``'s output, if that is its only use."""
        out = node.output[0]
        users = self.consumers(out)
        if len(users) != 1 or users[0].op_type != "Transpose" or out in self._graph_outputs():
            return None
        return list(users[0].attribute[0].ints)

    def bypass_transpose(self, node: onnx.NodeProto) -> None:
        """Remove the Transpose after ``node``: ``node`` now writes the Transpose's output."""
        (t,) = self.consumers(node.output[0])
        node.output[0] = t.output[0]
        self.graph.node.remove(t)

    def _used_names(self) -> set[str]:
        """Every value name read by a node, including reads from inside If/Loop subgraphs."""
        used: set[str] = {o.name for o in self.graph.output}
        stack = list(self.graph.node)
        while stack:
            node = stack.pop()
            used.update(node.input)
            for attr in node.attribute:
                subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
                for sub in subs:
                    stack.extend(sub.node)
                    used.update(o.name for o in sub.output)
        return used

    def _reads(self, node: onnx.NodeProto) -> set[str]:
        """Names ``node`` reads, including outer-scope names read inside its subgraphs."""
        names = {i for i in node.input if i}
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                inner = {o for n in sub.node for o in n.output} | {t.name for t in sub.initializer}
                inner |= {i.name for i in sub.input}
                for n in sub.node:
                    names |= self._reads(n) - inner
        return names

    def topological_sort(self) -> None:
        """Reorder nodes so each comes after the producers of what it reads (converters may append)."""
        known = {i.name for i in self.graph.input} | {t.name for t in self.graph.initializer}
        pending = [(n, self._reads(n)) for n in self.graph.node]
        ordered: list[onnx.NodeProto] = []
        while pending:
            rest = []
            for node, reads in pending:
                if reads <= known:
                    ordered.append(node)
                    known.update(node.output)
                else:
                    rest.append((node, reads))
            if len(rest) == len(pending):
                raise ValueError(f"graph has a cycle or reads undefined values at {rest[0][0].name!r}")
            pending = rest
        del self.graph.node[:]
        self.graph.node.extend(ordered)

    def remove_dead(self) -> int:
        """Drop nodes whose outputs nobody reads, then unused initializers; returns nodes removed."""
        removed = 0
        while True:
            used = self._used_names()
            dead = [n for n in self.graph.node if not any(o in used for o in n.output)]
            if not dead:
                break
            for n in dead:
                self.graph.node.remove(n)
            removed += len(dead)
        used = self._used_names()
        for init in [t for t in self.graph.initializer if t.name not in used]:
            self.graph.initializer.remove(init)
        return removed
