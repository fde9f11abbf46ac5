"""Small modules and recipes for fast ONNX export tests (no SAM 2)."""

from __future__ import annotations

import torch
from torch import nn

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, activation_spec, weight_spec


class TinyNet(nn.Module):
    """Conv stem -> tokens -> three Linear layers (GELU between), like a miniature ViT block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.fc1 = nn.Linear(16, 64)
        self.fc2 = nn.Linear(64, 32)
        self.head = nn.Linear(32, 8)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)  # [B, 16 tokens, 16]
        return self.head(self.act(self.fc2(self.act(self.fc1(t)))))


#: layer -> (weight bits, activation bits or None)
MIXED_BITS = {"stem": (8, None), "fc1": (6, 8), "fc2": (4, 4), "head": (2, None)}


def mixed_recipe() -> Recipe:
    rules = tuple(
        LayerRule(
            match=name,
            weight=weight_spec(bits=w),
            activation=activation_spec(bits=a, observer="minmax") if a else None,
        )
        for name, (w, a) in MIXED_BITS.items()
    )
    return Recipe(name="tiny-mixed", rules=rules, targets=("",))


def w8a8_recipe(weight_bits: int = 8, conv_inputs: bool = True) -> Recipe:
    """8-bit inputs everywhere (``conv_inputs=False``: the stem conv weight-only, as in the shipped w8a8)."""
    rule = LayerRule(
        match="*", weight=weight_spec(bits=weight_bits), activation=activation_spec(bits=8, observer="minmax")
    )
    rules = tuple(
        LayerRule(
            match=n, weight=rule.weight, activation=rule.activation if conv_inputs or n != "stem" else None
        )
        for n in MIXED_BITS
    )
    return Recipe(name="tiny-w8a8", rules=rules, targets=("",))


def example(batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, 16, 16, generator=g)


def frozen(recipe: Recipe) -> nn.Module:
    q = prepare_qat(TinyNet().eval(), recipe)
    calibrate(q, forward_loop=lambda m: m(example(8)), progress=False)
    return freeze(q)
