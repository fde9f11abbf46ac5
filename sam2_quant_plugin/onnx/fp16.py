"""fp16 variant of a float or weight-only ONNX graph (onnxruntime's float16 converter, float32 I/O kept).

Weight-only graphs convert too: their DequantizeLinear nodes (constant integer weights) stay float32 with a
Cast after them, and ``MatMulNBits`` takes fp16 activations and fp16 block scales, which is the form
onnxruntime's CUDA EP runs fastest. Graphs that quantize activations (a QuantizeLinear on a computed
tensor) are refused: their int8 kernels are CPU kernels and their scales must stay float32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from ..errors import ExportError
from ..io.atomic import atomic_write
from .graph import Graph

log = logging.getLogger(__name__)

#: Ops left in float32: quantization ops need float32 scales, and LayerNorm/Softmax reductions are safer.
KEEP_FP32 = ["QuantizeLinear", "DequantizeLinear", "Clip", "Range"]


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
    half = convert_float_to_float16(proto, keep_io_types=True, op_block_list=KEEP_FP32)
    Graph(half).topological_sort()  # the converter appends its input casts at the end
    onnx.checker.check_model(half)
    path = atomic_write(dst, lambda tmp: onnx.save(half, str(tmp)))
    log.info("wrote fp16 graph %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
