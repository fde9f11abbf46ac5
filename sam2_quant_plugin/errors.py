"""Exceptions raised by sam2-quant-plugin.

Every message names the problem and the fix; callers (the CLI) print them without a traceback.
"""

from __future__ import annotations


class Sam2QuantError(Exception):
    """Base class for all errors this package raises on bad input."""


class RecipeError(Sam2QuantError, ValueError):
    """A recipe file is malformed, has unknown keys, or a rule matches no module."""


class BitsError(RecipeError):
    """A bit width is outside the supported range (2..8)."""


class ConfigError(Sam2QuantError, ValueError):
    """A run configuration (e.g. CDPQ's ladder, budget or mode) is inconsistent or unknown."""


class ModelConfigError(Sam2QuantError, ValueError):
    """An unknown SAM 2 config name was given."""


class CheckpointError(Sam2QuantError, OSError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


class CalibrationError(Sam2QuantError, RuntimeError):
    """Calibration saw no data or produced non-finite ranges (NaN/Inf)."""


class ExportError(Sam2QuantError, RuntimeError):
    """A model or layer cannot be lowered to ONNX as asked."""


class ParityError(Sam2QuantError, AssertionError):
    """onnxruntime output differs from the PyTorch model beyond the tolerance."""


class DataError(Sam2QuantError, OSError):
    """An image or video folder is missing, empty, or holds unreadable files."""


class BundleError(Sam2QuantError, ValueError):
    """An ONNX bundle (folder + manifest.json) is incomplete, corrupt, or points outside itself."""


class Int8Error(Sam2QuantError, RuntimeError):
    """An int8 kernel on this CPU would compute wrong numbers (u8 x s8 int16 saturation without VNNI)."""


class DeviceError(Sam2QuantError, RuntimeError):
    """A device was asked for that this machine does not have (e.g. ``--device cuda`` without a GPU)."""
