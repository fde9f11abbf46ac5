"""ONNX export of any model (float or per-layer quantized) and onnxruntime validation.

A model family's graphs are :class:`~sam2_quant_plugin.models.GraphSpec` (SAM 2's, with
``export_image_encoder`` and friends, are in :mod:`sam2_quant_plugin.sam2.export`).

Needs the ``onnx`` extras (``pip install sam2-quant-plugin[onnx]``): onnx, onnxruntime, onnxscript.
"""

from .export import export_graph, export_module, ready_for_export
from .fp16 import to_fp16
from .lowering import WEIGHT_FORMATS, lower_weights
from .parity import THRESHOLDS, check_parity, failed_checks
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
    "export_graph",
    "export_module",
    "failed_checks",
    "read_manifest",
    "to_fp16",
    "lower_weights",
    "make_session",
    "missing_provider_message",
    "quant_ranges",
    "read_plan",
    "ready_for_export",
    "weight_bytes",
]
