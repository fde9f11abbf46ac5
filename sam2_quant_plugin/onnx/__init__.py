"""ONNX export of SAM 2 (float or per-layer quantized) and onnxruntime validation.

Needs the ``onnx`` extras (``pip install sam2-quant-plugin[onnx]``): onnx, onnxruntime, onnxscript.
"""

from .export import (
    export_decoder,
    export_image_encoder,
    export_memory_attention,
    export_module,
    ready_for_export,
)
from .fp16 import to_fp16
from .lowering import WEIGHT_FORMATS, lower_weights
from .parity import THRESHOLDS, check_parity, pipeline_parity
from .pipeline import export_and_validate, export_bundle, read_manifest
from .plan import PLAN_KEY, QuantRange, quant_ranges, read_plan, weight_bytes
from .runtime import available_eps, make_session, missing_provider_message

__all__ = [
    "PLAN_KEY",
    "THRESHOLDS",
    "WEIGHT_FORMATS",
    "QuantRange",
    "available_eps",
    "check_parity",
    "export_and_validate",
    "export_bundle",
    "export_module",
    "pipeline_parity",
    "read_manifest",
    "to_fp16",
    "export_decoder",
    "export_image_encoder",
    "export_memory_attention",
    "lower_weights",
    "make_session",
    "missing_provider_message",
    "quant_ranges",
    "read_plan",
    "ready_for_export",
    "weight_bytes",
]
