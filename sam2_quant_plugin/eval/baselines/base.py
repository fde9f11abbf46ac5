"""The common interface of every method in the table: ``make_student(ctx)`` -> a scored student."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from ...sam2.export import export_backbone

log = logging.getLogger(__name__)


@dataclass
class BuildContext:
    """What every method gets: the float teacher, calibration photos and clip, the input size, a work folder.

    The float encoder ONNX is exported once, on first use, and shared by the onnxruntime and NNCF methods.
    """

    teacher: nn.Module
    calib_images: Sequence[np.ndarray]
    image_size: int
    work_dir: Path
    seed: int = 0
    calib_video: Path | None = None  # a clip for methods over memory layers (None: the bundled clip)
    _float_onnx: Path | None = field(default=None, repr=False)

    @property
    def float_onnx(self) -> Path:
        if self._float_onnx is None:
            self._float_onnx = export_backbone(
                self.teacher, self.work_dir / "float_encoder.onnx", image_size=self.image_size
            )
        return self._float_onnx

    def calib_inputs(self) -> list[np.ndarray]:
        """The calibration photos as encoder inputs ``[1, 3, S, S]`` float32 numpy arrays."""
        from ...sam2.preprocess import to_model_input

        return [to_model_input([im], self.image_size).numpy() for im in self.calib_images]


@dataclass
class BuiltStudent:
    """A method's student and its table facts.

    ``model`` is a SAM 2 model (a torch copy of the teacher with quantized modules, or one whose
    ``image_encoder`` runs in onnxruntime), or a features callable (decoded by the teacher; no video).
    ``size_bytes`` is the image encoder artifact: the ONNX file for onnxruntime methods, a packed
    estimate (quantized weights at their bits, the rest float32) for torch fake-quant methods
    (``size_kind`` says which). ``a_bits`` None means float activations.
    """

    model: nn.Module | Callable[[Tensor], dict]
    avg_w_bits: float
    a_bits: int | None
    size_bytes: int
    size_kind: str
    runtime: str  # "torch" or "onnxruntime"
    onnx_path: Path | None = None
    notes: str = ""
    ort_optimize: bool = True  # False: the row runs (and is timed) with ORT_DISABLE_ALL
    timed: bool = True  # False for reference rows whose speed means nothing (e.g. the input-noise floor)


@dataclass(frozen=True)
class BundleSpec:
    """How ``sam2-quant bench`` exports a method as a whole ONNX bundle (encoder + decoder, timed, audited).

    ``recipe`` None: the float model. ``fp16``: the bundle's fp16 graphs are the ones measured.
    ``encoder_pass``: a graph pass on the exported encoder (``'ort-rtn-g32'``: onnxruntime's RTN quantizer).
    ``target_cpu``: the CPUs the file is right on (``'any'``, or ``'vnni'`` for full 8-bit int8 weights).
    """

    recipe: str | None = None
    weight_format: str = "int8"
    opset: int = 17
    fp16: bool = False
    encoder_pass: str | None = None
    target_cpu: str = "any"


class Method:
    """One row of the table. Subclasses set ``name`` / ``description`` and implement :meth:`make_student`.

    ``bundle`` (None: eval only) says how ``sam2-quant bench`` exports the same method as an ONNX bundle,
    so both commands name it the same.
    """

    name: str = "method"
    description: str = ""
    bundle: BundleSpec | None = None

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        raise NotImplementedError


def float_param_bytes(module: nn.Module) -> int:
    return int(sum(p.numel() * p.element_size() for p in module.parameters()))
