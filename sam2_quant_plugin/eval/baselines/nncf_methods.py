"""NNCF on the float encoder ONNX: ``nncf.quantize`` (INT8 W8A8 QDQ) and ``nncf.compress_weights``
(INT8 / INT4 weight-only, activations float). Run in onnxruntime with default optimisations."""

from __future__ import annotations

import logging
import warnings

import onnx

from .base import BuildContext, BuiltStudent, Method
from .onnx_encoder import INPUT, ort_built_student

log = logging.getLogger(__name__)


def _nncf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nncf
    return nncf


class NncfQuantizeMethod(Method):
    """``nncf.quantize`` (post-training INT8, transformer model type) on the photos."""

    name = "nncf-ptq-int8"
    description = "NNCF quantize INT8 (W8A8 QDQ, model_type=TRANSFORMER) on ONNX"

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        nncf = _nncf()
        out = ctx.work_dir / "nncf_ptq_int8.onnx"
        if not out.exists():
            inputs = ctx.calib_inputs()
            dataset = nncf.Dataset([{INPUT: x} for x in inputs])
            q = nncf.quantize(
                onnx.load(str(ctx.float_onnx)),
                dataset,
                subset_size=len(inputs),
                model_type=nncf.ModelType.TRANSFORMER,
            )
            onnx.save(q, str(out))
        return ort_built_student(ctx.teacher, out, a_bits=8)


class NncfCompressMethod(Method):
    """``nncf.compress_weights`` weight-only: ``int8`` (asym, per-channel) or ``int4`` (sym, group size)."""

    def __init__(self, bits: int = 8, group_size: int = 32, *, mixed_ratio: float | None = None) -> None:
        if bits not in (4, 8):
            raise ValueError(f"NNCF compress_weights rows are int8 or int4, got {bits}")
        self.bits, self.group_size, self.mixed_ratio = bits, group_size, mixed_ratio
        self.name = "nncf-wc-int8" if bits == 8 else f"nncf-wc-int4-g{group_size}"
        self.description = (
            "NNCF compress_weights INT8_ASYM (weight-only, MatMul/Gemm; convs float)"
            if bits == 8
            else f"NNCF compress_weights INT4_SYM group {group_size}, ratio 1.0, all_layers (weight-only, "
            "MatMul/Gemm; convs float)"
        )
        if mixed_ratio is not None:  # NNCF's own mixed precision: INT4 where its sensitivity allows
            self.name = f"nncf-wc-int4-int8-mixed-r{round(mixed_ratio * 100)}"
            self.description = (
                f"NNCF compress_weights INT4_SYM g{group_size} on {mixed_ratio:.0%} of the weights chosen "
                "by WEIGHT_QUANTIZATION_ERROR sensitivity, INT8 on the rest (weight-only; convs float)"
            )

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        nncf = _nncf()
        out = ctx.work_dir / f"{self.name.replace('-', '_')}.onnx"
        if not out.exists():
            model = onnx.load(str(ctx.float_onnx))
            # Conv weights come out with [C, 1, 1, 1] scales that onnxruntime's per-axis DequantizeLinear
            # rejects; compress_weights targets MatMul/Gemm anyway (the convs are 0.5% of the weights).
            skip = nncf.IgnoredScope(types=["Conv"])
            if self.bits == 8:
                c = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=skip)
            else:
                model = onnx.version_converter.convert_version(model, 21)  # int4 DequantizeLinear
                mixed = {}
                if self.mixed_ratio is not None:
                    # NNCF 3.4's data-aware criteria (HESSIAN_INPUT_ACTIVATION, ...) stop on this graph with
                    # "not supported for MatMuls with 1D inputs" at the first LayerNorm; the data-free
                    # weight-error criterion is the mixed precision its ONNX backend can run here.
                    mixed = {"sensitivity_metric": nncf.SensitivityMetric.WEIGHT_QUANTIZATION_ERROR}
                c = nncf.compress_weights(
                    model,
                    mode=nncf.CompressWeightsMode.INT4_SYM,
                    group_size=self.group_size,
                    ratio=1.0 if self.mixed_ratio is None else self.mixed_ratio,
                    all_layers=True,
                    ignored_scope=skip,
                    **mixed,
                )
            onnx.save(c, str(out))
        return ort_built_student(ctx.teacher, out, a_bits=None)
