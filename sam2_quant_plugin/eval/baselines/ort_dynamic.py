"""onnxruntime ``quantize_dynamic`` on the float encoder ONNX: int8 weights, activations quantized per call.

No calibration: each MatMul's input range is measured at run time (``DynamicQuantizeLinear``). With
``reduce_range`` the weights use 7 bits, which avoids u8 x s8 saturation on AVX2 CPUs without VNNI.
"""

from __future__ import annotations

import logging

from onnxruntime.quantization import QuantType, quantize_dynamic

from .base import BuildContext, BuiltStudent, Method
from .onnx_encoder import ort_built_student

log = logging.getLogger(__name__)


class OrtDynamicMethod(Method):
    """``quantize_dynamic`` (QInt8 weights, per-tensor) with or without ``reduce_range``."""

    def __init__(self, *, reduce_range: bool = True) -> None:
        self.reduce_range = reduce_range
        self.name = "ort-dynamic" + ("-rr" if reduce_range else "")
        self.description = "onnxruntime quantize_dynamic, int8 weights, dynamic uint8 activations" + (
            ", reduce_range" if reduce_range else ""
        )

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        out = ctx.work_dir / f"{self.name.replace('-', '_')}.onnx"
        if not out.exists():
            quantize_dynamic(ctx.float_onnx, out, weight_type=QuantType.QInt8, reduce_range=self.reduce_range)
            log.info("%s: wrote %s", self.name, out)
        return ort_built_student(ctx.teacher, out, a_bits=8, notes="dynamic activation ranges")
