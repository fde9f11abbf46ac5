"""Weight-only low-bit MatMuls as onnxruntime's ``com.microsoft.MatMulNBits`` (CPU and CUDA EPs).

Input: a graph whose weights were folded to ``W(int8 codes [K, N]) -> DequantizeLinear(axis=1) -> MatMul``.
Each such MatMul becomes ``MatMulNBits(A, B_packed, scales)`` with ``bits`` the smallest kernel width that
holds the layer's plan (``widths``, default 2, 4 and 8: a 2-bit layer takes 2 bits, 3 and 4 take 4, 5..8 take
8, since the kernel has no 3, 5, 6 or 7), codes stored unsigned with the default zero point ``2^(bits-1)``,
and the per-channel scale repeated over blocks of ``block_size`` along K (K is zero-padded to whole blocks).
Per-group weights (``DQ(axis=0) -> Reshape -> Transpose``, see :func:`_source`) keep their own scale per block
instead. Outputs are identical to the DequantizeLinear form; the file holds bits/8 bytes per weight plus one
float scale per block.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..api import QuantizerInfo
from ..errors import ExportError
from .graph import Graph
from .plan import quantizer_of

log = logging.getLogger(__name__)
MS_DOMAIN = "com.microsoft"
#: MatMulNBits' kernel widths (onnxruntime 1.32 CPU EP: 2, 4, 8; pass (4, 8) for a runtime without 2-bit)
NBITS_WIDTHS = (2, 4, 8)


def pack(codes: np.ndarray, bits: int, block_size: int) -> tuple[np.ndarray, int]:
    """``codes [K, N]`` (signed) -> ``B [N, n_blocks, block_size*bits/8]`` uint8 and ``n_blocks``."""
    k, n = codes.shape
    n_blocks = -(-k // block_size)
    zp = 1 << (bits - 1)
    u = np.full((n_blocks * block_size, n), zp, dtype=np.uint8)
    u[:k] = (codes.astype(np.int16) + zp).astype(np.uint8)
    u = u.T.reshape(n, n_blocks, block_size)
    if bits < 8:  # 8 // bits codes per byte, the first in the low bits (little-endian along K)
        per = 8 // bits
        u = u.reshape(n, n_blocks, block_size // per, per).astype(np.uint16)
        u = sum(u[..., i] << (bits * i) for i in range(per)).astype(np.uint8)
    return np.ascontiguousarray(u), n_blocks


def _source(
    g: Graph, mm: onnx.NodeProto, scopes: Mapping[str, QuantizerInfo], block_size: int
) -> tuple[QuantizerInfo, onnx.NodeProto, np.ndarray, np.ndarray, int] | None:
    """(weight quantizer, its DQ, codes [K, N], scales [N, n_blocks], block size) if ``mm`` reads codes.

    Two forms: per-channel ``DQ(axis=1, codes [K, N]) -> MatMul`` (the scale repeated per block of
    ``block_size``), and per-group ``DQ(axis=0, codes [N*K/g, g]) -> Reshape [N, K] -> Transpose -> MatMul``
    (one real scale per block, ``block_size = g``).
    """
    src = g.producer(mm.input[1])
    transpose = reshape = None
    if src is not None and src.op_type == "Transpose" and list(src.attribute[0].ints) == [1, 0]:
        transpose, reshape = src, g.producer(src.input[0])
        if reshape is None or reshape.op_type != "Reshape":
            return None
        src = g.producer(reshape.input[0])
    plan = quantizer_of(src, scopes) if src is not None and src.op_type == "DequantizeLinear" else None
    if src is None or plan is None or plan.kind != "weight" or not plan.signed:
        return None
    codes, scale = g.const(src.input[0]), g.const(src.input[1])
    axis = next((a.i for a in src.attribute if a.name == "axis"), 1)
    if codes is None or codes.ndim != 2 or codes.dtype != np.int8:
        return None
    if any(len(g.consumers(n.output[0])) != 1 for n in (src, reshape, transpose) if n is not None):
        return None
    if transpose is None:
        if scale.size > 1 and axis != 1:
            return None
        n = codes.shape[1]
        n_blocks = -(-codes.shape[0] // block_size)
        scales = np.repeat(np.broadcast_to(scale.astype(np.float32), (n,)), n_blocks).reshape(n, n_blocks)
        return plan, src, codes, scales, block_size
    shape = g.const(reshape.input[1])
    if shape is None or len(shape) != 2 or axis != 0 or scale.size != codes.shape[0]:
        return None
    n, k = (int(d) for d in shape)
    group = codes.shape[1]
    scales = scale.astype(np.float32).reshape(n, k // group)
    return plan, src, codes.reshape(n, k).T, scales, group


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """``widths`` sorted, each one of MatMulNBits' kernel widths (2, 4, 8), 8 included."""
    out = tuple(sorted({int(w) for w in widths}))
    if not out or any(w not in NBITS_WIDTHS for w in out) or 8 not in out:
        raise ExportError(
            f"MatMulNBits widths {tuple(widths)}: each must be one of {NBITS_WIDTHS} and 8 must be among "
            "them. Fix: e.g. --nbits-widths 2 4 8 (onnxruntime CPU EP) or 4 8"
        )
    return out


def nbits_for(plan: QuantizerInfo, widths: Sequence[int] = NBITS_WIDTHS) -> int:
    """MatMulNBits' ``bits`` for a ``plan.bits`` weight: the smallest allowed kernel width that holds it."""
    return min(w for w in widths if w >= plan.bits)


def stored_widths(proto: onnx.ModelProto) -> dict[str, int]:
    """Layer -> the ``bits`` its MatMulNBits node stores codes in (the layer named by its packed weight)."""
    out = {}
    for node in proto.graph.node:
        if node.op_type == "MatMulNBits" and node.input[1].endswith(".weight_nbits"):
            out[node.input[1].removesuffix(".weight_nbits")] = next(
                a.i for a in node.attribute if a.name == "bits"
            )
    return out


def to_matmulnbits(
    proto: onnx.ModelProto,
    scopes: Mapping[str, QuantizerInfo],
    block_size: int = 32,
    widths: Sequence[int] = NBITS_WIDTHS,
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Rewrite folded-weight MatMuls of the plan's layers (``scopes``, :func:`.plan.plan_scopes`) to
    MatMulNBits of the ``widths`` allowed; returns the graph and packed bytes per layer."""
    widths = check_widths(widths)
    g = Graph(proto)
    sizes: dict[str, int] = {}
    for mm in [n for n in proto.graph.node if n.op_type == "MatMul"]:
        found = _source(g, mm, scopes, block_size)
        if found is None:
            continue
        plan, dq, codes, scales, block = found
        name, bits = plan.layer, nbits_for(plan, widths)
        k, n = codes.shape
        packed, _ = pack(codes, bits, block)
        scales = np.ascontiguousarray(scales.reshape(-1))
        g.set_initializer(numpy_helper.from_array(packed, f"{name}.weight_nbits"))
        g.set_initializer(numpy_helper.from_array(scales, f"{name}.weight_nbits_scales"))
        node = helper.make_node(
            "MatMulNBits",
            [mm.input[0], f"{name}.weight_nbits", f"{name}.weight_nbits_scales"],
            list(mm.output),
            name=f"{dq.name.rsplit('/', 1)[0]}/MatMulNBits",
            domain=MS_DOMAIN,
            K=k,
            N=n,
            bits=bits,
            block_size=block,
        )
        idx = list(proto.graph.node).index(mm)
        proto.graph.node.remove(mm)
        proto.graph.node.insert(idx, node)
        sizes[name] = packed.nbytes + scales.nbytes
    g.remove_dead()
    if sizes and not any(o.domain == MS_DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    log.info("lowered %d MatMul(s) to MatMulNBits", len(sizes))
    return proto, sizes
