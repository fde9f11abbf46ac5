"""Recipe specs -> fake-quant factories and torch.ao ``QConfig`` objects (the adapter boundary)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .fake_quant.learnable import LearnableBitFakeQuantize
from .observers.minmax import MinMaxRangeObserver
from .observers.registry import get_observer
from .recipe.io import load_recipe
from .recipe.resolve import LayerPlan, resolve
from .recipe.schema import QuantSpec, Recipe
from .torchao_adapter import QConfig, QConfigMapping, build_qconfig, build_qconfig_mapping


def fake_quant_factory(spec: QuantSpec, *, ch_axis: int = 0) -> Callable[..., LearnableBitFakeQuantize]:
    """A constructor (as torch.ao's ``with_args`` gives) for the fake-quant ``spec`` describes.

    Every qconfig this package builds uses :class:`LearnableBitFakeQuantize` (fixed bits when
    ``spec.learnable`` is false), never torch's fused fake-quant, which does not export to ONNX.
    """
    get_observer(spec.observer)  # fail early on an unknown name
    return LearnableBitFakeQuantize.with_args(
        observer=get_observer(spec.observer),
        bits=spec.bits,
        min_bits=spec.min_bits if spec.learnable else spec.bits,
        max_bits=spec.max_bits if spec.learnable else spec.bits,
        learnable_bits=spec.learnable,
        learn_scale=spec.learn_scale or spec.learnable,
        signed=spec.symmetric,
        symmetric=spec.symmetric,
        narrow_range=spec.narrow_range,
        per_channel=spec.per_channel,
        ch_axis=ch_axis,
        group_size=spec.group_size or 0,
        **dict(spec.observer_args),
    )


def make_fake_quant(spec: QuantSpec) -> LearnableBitFakeQuantize:
    return fake_quant_factory(spec)()


def _output_observer() -> nn.Module:
    """Output range for torch.ao ``convert`` (quantized kernels emit uint8); never fake-quantizes."""
    return MinMaxRangeObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)


def qconfig_for(plan: LayerPlan) -> QConfig:
    """torch.ao ``QConfig`` for one layer's plan (weights quantized; input activations go in a pre-hook)."""
    if plan.weight is None:
        raise ValueError(f"{plan.name}: no weight spec, so no torch.ao QConfig is needed")
    output = _output_observer if plan.activation is not None else nn.Identity
    return build_qconfig(weight_fq=fake_quant_factory(plan.weight), output_observer=output)


def layer_qconfigs(plans: dict[str, LayerPlan]) -> dict[str, QConfig]:
    """Layer name -> torch.ao ``QConfig`` for every plan with a weight spec (what ``prepare_qat`` swaps)."""
    return {n: qconfig_for(p) for n, p in plans.items() if p.weight is not None}


def qconfig_mapping(model: nn.Module, recipe: Recipe | str | Path) -> QConfigMapping:
    """The recipe as a torch.ao ``QConfigMapping`` for ``model``: a module-name entry per layer it quantizes.

    Each entry is the ``QConfig`` :func:`~sam2_quant_plugin.prepare_qat` itself uses: this package's
    fake-quant on the weight, and (for layers with activation bits) a min-max output observer for torch.ao
    ``convert``. Eager mode, torch.ao's way::

        mapping = sq.qconfig_mapping(model, recipe)
        torch.ao.quantization.propagate_qconfig_(model, dict(mapping.module_name_qconfigs))
        torch.ao.quantization.prepare_qat(model.train(), inplace=True)

    Input-activation fake-quant is not a torch.ao ``QConfig`` concept (eager torch.ao quantizes inputs with
    ``QuantStub``); :func:`~sam2_quant_plugin.prepare_qat` adds it as a pre-hook. Raises
    :class:`~sam2_quant_plugin.RecipeError` where the recipe does not fit the model.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return build_qconfig_mapping(layer_qconfigs(resolve(model, recipe)))
