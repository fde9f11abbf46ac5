"""onnxruntime's weight-only quantizer (``MatMulNBitsQuantizer``, RTN, 4-bit, block 32, symmetric) on the
fp16 float encoder: the graph whose CUDA EP timing is the reference for this package's ``cuda_int4_fp16``
profile. Here it runs on the CPU EP (fp16 MatMulNBits kernels; slower than float32 on a CPU), so the row's
fidelity is the CUDA graph's and its latency is not the CUDA one.
"""

from __future__ import annotations

import logging

from ...onnx.fp16 import to_fp16
from ...onnx.ort_rtn import ort_rtn_quantize
from .base import BuildContext, BuiltStudent, Method
from .onnx_encoder import ort_built_student

log = logging.getLogger(__name__)


class OrtRtnMethod(Method):
    """Float encoder ONNX -> fp16 (float32 I/O) -> onnxruntime RTN ``MatMulNBits``, run in onnxruntime."""

    def __init__(self, block_size: int = 32) -> None:
        self.block_size = block_size
        self.name = f"ort-rtn-int4-g{block_size}"
        self.description = (
            f"onnxruntime MatMulNBitsQuantizer RTN INT4 symmetric, block {block_size}, on the fp16 float "
            "encoder (fp16 activations and block scales: the CUDA EP form; convs stay fp16); CPU EP here"
        )

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        out = ctx.work_dir / f"{self.name.replace('-', '_')}_fp16.onnx"
        if not out.exists():
            half = ctx.work_dir / "float_encoder_fp16.onnx"
            if not half.exists():
                to_fp16(ctx.float_onnx, half)
            ort_rtn_quantize(half, out, block_size=self.block_size, symmetric=True)
        return ort_built_student(
            ctx.teacher,
            out,
            a_bits=None,
            notes="fp16 graph (CUDA EP form); CPU EP latency of fp16 is not representative",
        )
