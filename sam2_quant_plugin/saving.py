"""Save and load prepared, calibrated or frozen models: recipe + ``state_dict``, loaded strictly.

A frozen model's quantizers are :class:`FrozenFakeQuantize` (no observers), so its ``state_dict`` does not
fit a freshly prepared model. :func:`load_quantized` rebuilds the same structure first (``prepare_qat``
with the saved recipe, then frozen placeholders) and loads with ``strict=True``: no calibration needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .api import current_recipe, fake_quants, prepare_qat, quant_state, set_observers
from .errors import CheckpointError
from .fake_quant.frozen import FrozenFakeQuantize
from .io.atomic import atomic_write
from .io.torch_files import load_torch_dict
from .recipe.io import load_recipe
from .recipe.schema import Recipe

log = logging.getLogger(__name__)

FORMAT = "sam2_quant_plugin.quantized"
FORMAT_VERSION = 1


def save_quantized(model: nn.Module, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a prepared (calibrated or not) or frozen model: its recipe, stage and ``state_dict``.

    A frozen model is saved with its resolved per-layer recipe (learned or searched bits as integers).
    """
    state = quant_state(model)
    recipe = current_recipe(model, name=state.recipe.name) if state.frozen else state.recipe
    blob = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "stage": "frozen" if state.frozen else "prepared",
        "recipe": recipe.to_dict(),
        "state_dict": model.state_dict(),
    }
    path = atomic_write(path, lambda p: torch.save(blob, p), overwrite=overwrite)
    log.info("saved %s model (recipe %r) to %s", blob["stage"], recipe.name, path)
    return path


_READ_FIX = "pass a file written by save_quantized or a run's frozen_state_dict.pt"


def _read(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(path, dict):
        return path
    return load_torch_dict(path, what="a saved model", fix=_READ_FIX)


def load_quantized(
    path: str | Path | dict[str, Any],
    model: nn.Module,
    *,
    recipe: Recipe | str | Path | None = None,
    inplace: bool = False,
) -> nn.Module:
    """The saved model, rebuilt on ``model`` (the float model of the same architecture) and loaded strictly.

    ``path`` is a file from :func:`save_quantized`, or a bare frozen ``state_dict`` (e.g. the
    ``frozen_state_dict.pt`` of ``sam2-quant run``) together with ``recipe`` (that run's ``recipe.yaml``).
    Returns a prepared model (training can continue) or a frozen one, ready for ``convert`` or export.
    """
    blob = _read(path)
    if blob.get("format") == FORMAT:
        if blob.get("version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: format version {blob.get('version')}, this package reads {FORMAT_VERSION}. "
                "Fix: save it again with this version's save_quantized."
            )
        saved = Recipe.from_dict(blob["recipe"], source=f"{path} recipe")
        stage, state_dict = blob["stage"], blob["state_dict"]
    else:
        if recipe is None:
            raise CheckpointError(
                f"{path} is a bare state_dict, which does not say how the model was quantized. Fix: pass "
                "recipe= (for a `sam2-quant run` folder, its recipe.yaml), or save with save_quantized"
            )
        saved, stage, state_dict = None, None, blob
    if recipe is not None:
        saved = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if stage is None:  # bare state_dict: frozen models carry no learnable quantizer parameters
        stage = "prepared" if any(k.endswith(".bit_offset") for k in state_dict) else "frozen"
    assert saved is not None  # a bare state_dict without recipe= was refused above
    qmodel = prepare_qat(model, saved, inplace=inplace)
    if stage == "frozen":
        _frozen_placeholders(qmodel)
    try:
        qmodel.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path} does not fit this model with recipe {saved.name!r}: {str(e)[:600]}. Fix: pass the float "
            "model of the architecture that was quantized (and, for a bare state_dict, the recipe it used)"
        ) from None
    return qmodel


def _frozen_placeholders(model: nn.Module) -> None:
    """Freeze ``model``'s structure without data: every quantizer becomes a placeholder frozen one."""
    set_observers(model, False)
    for name, fq in list(fake_quants(model).items()):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, FrozenFakeQuantize.placeholder(fq))
    quant_state(model).frozen = True
    model.eval()
