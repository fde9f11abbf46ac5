"""``quantize``: post-training quantization of any torch model in one call (prepare, calibrate, freeze)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .api import freeze, prepare_qat
from .calibrate import batch_forward_loop, calibrate
from .device import resolve_device
from .recipe.schema import Recipe


def quantize(
    model: nn.Module,
    recipe: Recipe | str | Path,
    forward_loop: Callable[[nn.Module], None] | Iterable[Any],
    *,
    inplace: bool = False,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Per-layer PTQ of any model: ``prepare_qat`` -> ``calibrate(forward_loop)`` -> ``freeze``.

    ``forward_loop(model)`` runs calibration data through the model (ModelOpt's convention); an iterable
    of inputs (a list of batches, a DataLoader) also works and is fed as ``model(batch)``. ``recipe`` is a
    :class:`Recipe`, a YAML path or a shipped name; a recipe without ``targets`` covers the whole model.
    Returns the frozen model, ready for :func:`~sam2_quant_plugin.convert`, ONNX export or
    :func:`~sam2_quant_plugin.save_quantized`. ``device`` ('cpu', 'cuda', 'auto'; None: where the model
    is) is where calibration runs; the loop's inputs follow the model.
    """
    loop = forward_loop if callable(forward_loop) else batch_forward_loop(forward_loop)
    qmodel = prepare_qat(model, recipe, inplace=inplace)
    if device is not None:
        qmodel.to(resolve_device(device))
    calibrate(qmodel, forward_loop=loop, progress=False)
    return freeze(qmodel, inplace=True)
