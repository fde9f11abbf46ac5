"""fp16 variant of a float ONNX graph (onnxruntime's float16 converter, float32 inputs and outputs kept)."""

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
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node):
        raise ExportError(
            f"{src} holds QuantizeLinear/DequantizeLinear: fp16 conversion is for float graphs. Fix: export "
            "the float model (no recipe) with --fp16, or use weight_format 'matmulnbits' on CUDA."
        )
    half = convert_float_to_float16(proto, keep_io_types=True, op_block_list=KEEP_FP32)
    Graph(half).topological_sort()  # the converter appends its input casts at the end
    onnx.checker.check_model(half)
    path = atomic_write(dst, lambda tmp: onnx.save(half, str(tmp)))
    log.info("wrote fp16 graph %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
