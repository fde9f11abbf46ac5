"""What one ONNX graph runs beyond another: op-type histograms, with MatMulNBits counted as a MatMul.

A weight-only low-bit graph meant for onnxruntime's CUDA EP should be its float (fp16) graph with each
Linear's MatMul swapped for ``com.microsoft.MatMulNBits`` and nothing else: every other node costs a
kernel launch per inference. :func:`audit_graphs` checks that without a GPU, on the graphs as written
(before onnxruntime's optimizations). ``extra`` lists the op types (and counts) the audited graph has
beyond the reference, ``missing`` the reverse; ``extra_nodes`` names the surplus nodes, matched by node
name (both graphs come from the same torch export, so shared nodes share names), with the op types that
read each one's output. ``matmulnbits`` tells the low-bit kernels apart (bits, block size, scale dtype,
zero points), which the histogram cannot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

NBITS = "MatMulNBits"


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, including those inside If / Loop / Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                yield from _nodes(sub)


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (subgraphs included), sorted by op type."""
    return dict(sorted(Counter(n.op_type for n in _nodes(model.graph)).items()))


def optimized_op_histogram(path: str | Path, optimized_path: str | Path) -> dict[str, int]:
    """:func:`op_histogram` of the graph onnxruntime's CPU EP runs for ``path`` (all optimizations, the
    fused int8 kernels included), written to ``optimized_path`` on the way."""
    from .runtime import make_session

    make_session(path, optimized_model_path=optimized_path)
    return op_histogram(onnx.load(str(optimized_path)))


#: What the CPU EP runs, by kernel family: integer kernels, weight-only low-bit kernels (onnxruntime rewrites
#: weight-only DequantizeLinear -> MatMul into MatMulNBits itself), float layers, DequantizeLinear left over.
KERNEL_FAMILIES = {
    "int8": ("MatMulIntegerToFloat", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger", "QGemm"),
    "nbits": ("MatMulNBits",),
    "float": ("MatMul", "FusedMatMul", "Gemm", "FusedGemm", "Conv", "FusedConv", "ConvTranspose"),
    "dq_left": ("DequantizeLinear",),  # a layer dequantized to float instead of run on an integer kernel
}


def runtime_kernels(path: str | Path) -> dict[str, int]:
    """How many layers onnxruntime's CPU EP runs on each :data:`KERNEL_FAMILIES` kernel, after all its
    optimizations (on this CPU), for the graph at ``path``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sam2_quant_kernels_") as tmp:
        hist = optimized_op_histogram(path, Path(tmp) / "optimized.onnx")
    return {family: sum(hist.get(op, 0) for op in ops) for family, ops in KERNEL_FAMILIES.items()}


def format_kernels(kernels: dict[str, int]) -> str:
    """``{"int8": 51, "nbits": 0, "float": 9, "dq_left": 0}`` -> ``"int8 51, float 9"`` (zeros left out)."""
    return ", ".join(f"{k} {v}" for k, v in kernels.items() if v) or "none"


def _folded(hist: dict[str, int]) -> Counter[str]:
    """``hist`` with MatMulNBits counted as the MatMul it replaces."""
    out = Counter(hist)
    out["MatMul"] += out.pop(NBITS, 0)
    return out


def matmulnbits_configs(model: onnx.ModelProto) -> dict[str, int]:
    """How many MatMulNBits nodes use each kernel configuration, e.g. ``{"4-bit b32 float16": 51}``."""
    dtypes = {t.name: onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in model.graph.initializer}
    configs: Counter[str] = Counter()
    for node in _nodes(model.graph):
        if node.op_type != NBITS:
            continue
        attrs = {a.name: a.i for a in node.attribute}
        key = f"{attrs.get('bits', 4)}-bit b{attrs.get('block_size', 0)} {dtypes.get(node.input[2], '?')}"
        if len(node.input) > 3 and node.input[3]:
            key += " zero-points"
        if attrs.get("accuracy_level", 0):
            key += f" accuracy_level={attrs['accuracy_level']}"
        configs[key] += 1
    return dict(sorted(configs.items()))


@dataclass(frozen=True)
class GraphAudit:
    """The audited graph against a reference graph (see the module docstring)."""

    ops: dict[str, int]
    reference_ops: dict[str, int]
    extra: dict[str, int]
    missing: dict[str, int]
    matmulnbits: dict[str, int]
    reference_matmulnbits: dict[str, int]
    extra_nodes: list[str] = field(default_factory=list)

    @property
    def same_structure(self) -> bool:
        """True when the graphs differ at most by MatMul -> MatMulNBits swaps."""
        return not self.extra and not self.missing

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "same_structure": self.same_structure}


def _surplus_nodes(
    model: onnx.ModelProto, reference: onnx.ModelProto, op_types: set[str], limit: int
) -> list[str]:
    """``op_type name -> reader op types`` for nodes of ``op_types`` whose name the reference lacks."""
    known = {(n.op_type, n.name) for n in _nodes(reference.graph)}
    readers: dict[str, list[str]] = {}
    for n in _nodes(model.graph):
        for i in n.input:
            readers.setdefault(i, []).append(n.op_type)
    out = []
    for n in _nodes(model.graph):
        if n.op_type in op_types and (n.op_type, n.name) not in known:
            users = sorted({u for o in n.output for u in readers.get(o, [])}) or ["(graph output)"]
            out.append(f"{n.op_type} {n.name} -> {', '.join(users)}")
    return out[:limit]


def audit_graphs(model: onnx.ModelProto, reference: onnx.ModelProto, *, max_nodes: int = 50) -> GraphAudit:
    """Compare ``model`` with ``reference`` op type by op type, MatMulNBits counted as MatMul.

    ``extra_nodes`` holds at most ``max_nodes`` entries.
    """
    ops, ref_ops = op_histogram(model), op_histogram(reference)
    a, b = _folded(ops), _folded(ref_ops)
    extra = dict(sorted((a - b).items()))
    missing = dict(sorted((b - a).items()))
    return GraphAudit(
        ops=ops,
        reference_ops=ref_ops,
        extra=extra,
        missing=missing,
        matmulnbits=matmulnbits_configs(model),
        reference_matmulnbits=matmulnbits_configs(reference),
        extra_nodes=_surplus_nodes(model, reference, set(extra), max_nodes),
    )


def format_counts(counts: dict[str, int], sign: str = "+") -> str:
    """``{"Cast": 7, "DequantizeLinear": 7}`` -> ``"Cast +7, DequantizeLinear +7"``; empty -> ``"none"``."""
    return ", ".join(f"{k} {sign}{v}" for k, v in counts.items()) or "none"
