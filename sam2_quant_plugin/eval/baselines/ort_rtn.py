"""The fp16 float encoder, and onnxruntime's weight-only quantizer (``MatMulNBitsQuantizer``, RTN, 4-bit,
block 32, symmetric) on it: the graph whose CUDA EP timing is the reference for this package's
``cuda_int4_fp16`` profile. Here they run on the CPU EP (fp16 kernels; slower than float32 on a CPU), so
the rows' fidelity is the CUDA graphs' and their latency is not the CUDA one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...onnx.fp16 import to_fp16
from ...onnx.ort_rtn import ort_rtn_quantize
from .base import BuildContext, BuiltStudent, BundleSpec, Method
from .onnx_encoder import ort_built_student

log = logging.getLogger(__name__)
FP16_NOTE = "fp16 graph (CUDA EP form); CPU EP latency of fp16 is not representative"


def float_fp16_onnx(ctx: BuildContext) -> Path:
    """The float encoder ONNX converted to fp16 (float32 I/O), made once per work folder."""
    half = ctx.work_dir / "float_encoder_fp16.onnx"
    if not half.exists():
        to_fp16(ctx.float_onnx, half)
    return half


class FloatFp16Method(Method):
    """The float encoder as an fp16 ONNX graph, run in onnxruntime (the CUDA EP's float reference)."""

    name = "float-fp16"
    description = "float encoder converted to fp16 (float32 I/O; the CUDA EP form); CPU EP here"
    bundle = BundleSpec(fp16=True)

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        return ort_built_student(ctx.teacher, float_fp16_onnx(ctx), a_bits=None, notes=FP16_NOTE)


class OrtRtnMethod(Method):
    """Float encoder ONNX -> fp16 (float32 I/O) -> onnxruntime RTN ``MatMulNBits``, run in onnxruntime."""

    def __init__(self, block_size: int = 32) -> None:
        self.block_size = block_size
        self.name = f"ort-rtn-int4-g{block_size}"
        self.description = (
            f"onnxruntime MatMulNBitsQuantizer RTN INT4 symmetric, block {block_size}, on the fp16 float "
            "encoder (fp16 activations and block scales: the CUDA EP form; convs stay fp16); CPU EP here"
        )
        self.bundle = BundleSpec(fp16=True, encoder_pass=f"ort-rtn-g{block_size}")

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        out = ctx.work_dir / f"{self.name.replace('-', '_')}_fp16.onnx"
        if not out.exists():
            ort_rtn_quantize(float_fp16_onnx(ctx), out, block_size=self.block_size, symmetric=True)
        return ort_built_student(ctx.teacher, out, a_bits=None, notes=FP16_NOTE)
