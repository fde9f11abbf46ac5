"""Recipe specs -> fake-quant factories and torch.ao ``QConfig`` objects (the adapter boundary)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .fake_quant.learnable import LearnableBitFakeQuantize
from .observers.minmax import MinMaxRangeObserver
from .observers.registry import get_observer
from .recipe.resolve import LayerPlan
from .recipe.schema import QuantSpec
from .torchao_adapter import QConfig, build_qconfig


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
