"""The adapter of any torch model: nothing is assumed, so what needs data or inputs asks for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import model_device
from ..errors import CalibrationError, ExportError, ModelConfigError
from .adapter import ForwardLoop, GraphSpec, ModelAdapter, Task
from .info import ModelInfo, model_info

_LOOP_FIX = (
    "Fix: pass forward_loop, a callable that runs your calibration data through the model, e.g. "
    "calibrate(model, forward_loop=sq.batch_forward_loop(batches)); sq.quantize(model, recipe, "
    "forward_loop) does prepare + calibrate + freeze in one call"
)


class GenericAdapter:
    """Any ``nn.Module``: calibration needs a ``forward_loop``, export needs example inputs
    (:func:`sam2_quant_plugin.onnx.export_module`), CDPQ runs ``model(batch)`` and distils its output."""

    name = "generic"

    def matches(self, model: nn.Module) -> bool:
        return True

    def build(
        self,
        config: str,
        checkpoint: str | Path | None,
        *,
        image_size: int | None,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> nn.Module:
        raise ModelConfigError(
            f"the generic adapter cannot build {config!r}: it knows no model zoo. Fix: build the model "
            "yourself and pass it in (teacher=..., or sq.quantize(model, ...))"
        )

    def info(self, model: nn.Module) -> ModelInfo:
        return model_info(model)

    def default_targets(self) -> tuple[str, ...]:
        return ("",)

    def forward_loop(self, images: Any, *, plans: Sequence[str], **kw: Any) -> ForwardLoop:
        raise CalibrationError(
            "calibrate() without forward_loop feeds photos through SAM 2's encoder and decoder, but this "
            f"model is not SAM 2 (no adapter knows how to feed it). {_LOOP_FIX}"
        )

    def graphs(self, model: nn.Module, *, image_size: int | None, **kw: Any) -> dict[str, GraphSpec]:
        raise ExportError(
            f"no bundle layout is known for {type(model).__name__}. Fix: export it with "
            "sam2_quant_plugin.onnx.export_module(model, example_inputs, path, input_names=..., "
            "output_names=...)"
        )

    def target_graphs(self, targets: Sequence[str]) -> tuple[str, ...]:
        return ()  # no bundle layout (see graphs)

    def parity(
        self,
        model: nn.Module,
        files: Mapping[str, Path],
        images: Sequence[Any],
        *,
        image_size: int | None,
        optimization: str = "all",
        **kw: Any,
    ) -> dict[str, float | int | str]:
        raise ExportError(
            "no parity inputs are known for a generic model. Fix: run the exported file with onnxruntime on "
            "your own inputs and compare with model(inputs)"
        )

    def fidelity(
        self,
        teacher: nn.Module,
        student: nn.Module,
        images: Sequence[Any],
        *,
        image_size: int | None,
        **kw: Any,
    ) -> dict[str, float]:
        raise ModelConfigError(
            "no fidelity metric is known for a generic model. Fix: compare teacher(x) and student(x) on your "
            "own inputs (e.g. cosine of the outputs)"
        )

    def batches(self, paths: Sequence[Path], *, image_size: int | None, seed: int, **kw: Any) -> list[Any]:
        raise ModelConfigError(
            "the generic adapter cannot turn image files into batches for this model. Fix: pass "
            "batches=(train, val) (lists of model inputs) to run_cdpq / build_session"
        )

    def task(self) -> Task:
        return output_task


def output_task(model: nn.Module, batch: Any) -> dict[str, Any]:
    """``{"output": model(batch)}`` (a tuple/list batch is passed as positional arguments)."""
    args = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    device = model_device(model)  # inputs follow the model
    return {"output": model(*(a.to(device) if isinstance(a, torch.Tensor) else a for a in args))}


def _implements_protocol(adapter: GenericAdapter) -> ModelAdapter:
    return adapter  # mypy checks here that GenericAdapter satisfies ModelAdapter
