"""sam2-quant-plugin: per-layer mixed-precision quantization of SAM 2 (or any torch model) through torch.ao.

model = build_sam2_model("sam2.1_hiera_t")             # seeded random init unless checkpoint=...
qmodel = prepare_qat(model, load_recipe("w4a8"))       # torch.ao prepare_qat underneath
calibrate(qmodel)                                       # observers see the bundled photos
...train...
frozen = freeze(qmodel)                                 # integer bits, fixed scales
export_onnx(frozen, "bundle")                           # QDQ ONNX bundle for onnxruntime (the onnx extra)

Any other model: ``frozen = quantize(model, recipe, forward_loop)`` (a recipe without targets covers the
whole model), or ``qconfig_mapping(model, recipe)`` for torch.ao's own ``prepare_qat``.
"""

from __future__ import annotations

import logging
from typing import Any

from . import observers as observers  # registers the observers by name
from .api import (
    QuantizerInfo,
    QuantState,
    current_recipe,
    fake_quants,
    freeze,
    is_prepared,
    prepare_qat,
    quant_state,
    quantizers,
    set_fake_quant,
    set_observers,
    weight_bits_summary,
)
from .calibrate import batch_forward_loop, calibrate
from .convert import convert
from .errors import (
    BitsError,
    BundleError,
    CalibrationError,
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    ExportError,
    Int8Error,
    ModelConfigError,
    ParityError,
    RecipeError,
    Sam2QuantError,
)
from .fake_quant import FrozenFakeQuantize, LearnableBitFakeQuantize, bit_penalty
from .models import ModelAdapter, ModelInfo, adapter_for, get_adapter, model_info, register_adapter
from .qconfig import qconfig_mapping
from .quantize import quantize
from .recipe import (
    LayerRule,
    QuantSpec,
    Recipe,
    activation_spec,
    load_recipe,
    resolve,
    save_recipe,
    weight_spec,
)
from .sam2 import build_sam2_model, save_checkpoint
from .sam2.calibration import default_forward_loop
from .saving import load_quantized, save_quantized

__version__ = "0.1.0"
logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    """``export_onnx`` (:func:`sam2_quant_plugin.onnx.pipeline.export_bundle`) is imported on first use:
    it needs the ``onnx`` extra, which the quantization verbs do not."""
    if name == "export_onnx":
        from .onnx.pipeline import export_bundle

        return export_bundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BitsError",
    "BundleError",
    "CalibrationError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "ExportError",
    "FrozenFakeQuantize",
    "Int8Error",
    "LayerRule",
    "LearnableBitFakeQuantize",
    "ModelAdapter",
    "ModelInfo",
    "ModelConfigError",
    "ParityError",
    "QuantSpec",
    "QuantState",
    "QuantizerInfo",
    "Recipe",
    "RecipeError",
    "Sam2QuantError",
    "activation_spec",
    "adapter_for",
    "batch_forward_loop",
    "bit_penalty",
    "build_sam2_model",
    "calibrate",
    "convert",
    "current_recipe",
    "default_forward_loop",
    "export_onnx",
    "fake_quants",
    "freeze",
    "get_adapter",
    "is_prepared",
    "load_quantized",
    "load_recipe",
    "model_info",
    "prepare_qat",
    "qconfig_mapping",
    "quant_state",
    "quantize",
    "quantizers",
    "register_adapter",
    "resolve",
    "save_checkpoint",
    "save_quantized",
    "save_recipe",
    "set_fake_quant",
    "set_observers",
    "weight_bits_summary",
    "weight_spec",
]
