"""onnxruntime ``quantize_static`` (QDQ, u8 activations / s8 weights) on the float encoder ONNX.

``fused``: the session runs with onnxruntime's default optimisations, which fuse Q/DQ pairs into int8
kernels (what a deployment gets). ``simulated``: ``ORT_DISABLE_ALL``, Q/DQ executed as written (float math
on dequantized values). The same quantized file serves both.
"""

from __future__ import annotations

import logging
from pathlib import Path

from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from .base import BuildContext, BuiltStudent, Method
from .onnx_encoder import INPUT, ort_built_student

log = logging.getLogger(__name__)

CALIBRATION = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}


class _Reader(CalibrationDataReader):
    def __init__(self, inputs: list) -> None:
        self._it = iter([{INPUT: x} for x in inputs])

    def get_next(self) -> dict | None:
        return next(self._it, None)


class OrtStaticMethod(Method):
    """``quantize_static`` QDQ with ``calibration`` (minmax / percentile); ``fused`` or simulated session."""

    def __init__(
        self,
        calibration: str = "minmax",
        *,
        fused: bool = True,
        matmul_conv_only: bool = False,
        reduce_range: bool = False,
    ) -> None:
        self.calibration, self.fused = calibration, fused
        self.matmul_conv_only, self.reduce_range = matmul_conv_only, reduce_range
        tag = "-mmconv" if matmul_conv_only else ""
        tag += "-rr" if reduce_range else ""
        self.file_tag = f"ort_static_{calibration}{tag}"
        self.name = f"ort-static-{calibration}{tag}-{'fused' if fused else 'sim'}"
        self.description = (
            f"onnxruntime quantize_static QDQ u8/s8, {calibration} calibration"
            + (", MatMul+Conv only" if matmul_conv_only else "")
            + (", reduce_range" if reduce_range else "")
            + (", default ORT optimisations (fused int8)" if fused else ", ORT_DISABLE_ALL (simulated)")
        )

    def quantized_path(self, ctx: BuildContext) -> Path:
        out = ctx.work_dir / f"{self.file_tag}.onnx"
        if out.exists():  # the fused and simulated rows share one file
            return out
        extra = {"CalibMovingAverage": False}
        if self.calibration == "percentile":
            extra["CalibPercentile"] = 99.999
        quantize_static(
            ctx.float_onnx,
            out,
            _Reader(ctx.calib_inputs()),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Conv"] if self.matmul_conv_only else None,
            per_channel=False,
            reduce_range=self.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CALIBRATION[self.calibration],
            extra_options=extra,
        )
        log.info("%s: wrote %s", self.name, out)
        return out

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        path = self.quantized_path(ctx)
        notes = "fused" if self.fused else "ORT_DISABLE_ALL"
        return ort_built_student(ctx.teacher, path, a_bits=8, optimize=self.fused, notes=notes)
