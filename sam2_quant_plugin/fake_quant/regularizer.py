"""Bit-cost regulariser for learnable bit widths: penalty = lambda * sum_i b_i * w_i / importance_i."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ConfigError, RecipeError
from ..numerics import bits_tensor_from_offset
from ..torchao_adapter import WEIGHT_FQ
from .learnable import LearnableBitFakeQuantize


def learnable_bit_modules(model: nn.Module) -> dict[str, LearnableBitFakeQuantize]:
    """Name -> every LearnableBitFakeQuantize whose bit width trains."""
    return {
        n: m for n, m in model.named_modules() if isinstance(m, LearnableBitFakeQuantize) and m.learnable_bits
    }


def bit_cost(fq: LearnableBitFakeQuantize, *, soft: bool = False) -> torch.Tensor:
    """Differentiable bit width of one fake-quant: STE-rounded, or the raw float when ``soft``."""
    if soft:
        return fq.bit_offset.sum() + fq.min_bits
    return bits_tensor_from_offset(fq.bit_offset, fq.min_bits, fq.max_bits).sum()


def bit_penalty(
    model: nn.Module,
    importance: Mapping[str, float] | None = None,
    *,
    weight_by_params: bool = True,
    soft: bool = True,
) -> torch.Tensor:
    """sum_i b_i * size_i / importance_i over learnable-bit fake-quants, normalised by total size.

    ``importance`` maps a fake-quant's module name (or its layer's name) to a positive number: more
    important layers pay less for their bits. ``weight_by_params`` weights by the parameter count of
    the quantized tensor (so the penalty tracks model bytes); ``soft`` uses the unrounded width, whose
    gradient is smooth. Returns average bits per (weighted) element.
    """
    mods = learnable_bit_modules(model)
    if not mods:
        raise RecipeError(
            "model has no learnable-bit fake-quant, so there are no bits to penalise. Fix: use a recipe "
            "with `bits: {learnable: true}` (e.g. the shipped `learnable`)"
        )
    total = torch.zeros(())
    norm = 0.0
    for name, fq in mods.items():
        layer = name.rsplit(".", 1)[0]
        imp = 1.0
        if importance is not None:
            imp = float(importance.get(name, importance.get(layer, 1.0)))
            if not math.isfinite(imp) or imp <= 0:
                raise ConfigError(f"importance of {name!r} is {imp}. Fix: pass importances > 0 (finite)")
        size = float(fq.scale.numel() if not weight_by_params else _tensor_size(model, name))
        total = total + bit_cost(fq, soft=soft) * size / imp
        norm += size
    return total / max(norm, 1.0)


def _tensor_size(model: nn.Module, fq_name: str) -> float:
    parent_name, _, attr = fq_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    weight = getattr(parent, "weight", None)
    if attr == WEIGHT_FQ and isinstance(weight, torch.Tensor):
        return float(weight.numel())
    return 1.0
