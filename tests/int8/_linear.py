"""One W8A8 Linear behind a LayerNorm (as in Hiera), exported: the unit the int8 kernel tests run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.int8 import Int8Layer, int8_layers
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, activation_spec, weight_spec

K, N, TOKENS = 37, 19, 64  # odd K: the kernels pad the last pair with a zero


def ln_linear(weight_bits: int = 8) -> tuple[nn.Module, torch.Tensor]:
    """(frozen LayerNorm -> W8A8 Linear, its input [1, TOKENS, K]); seeded."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.LayerNorm(K), nn.Linear(K, N))
    with torch.no_grad():
        model[1].weight.copy_(torch.rand(N, K, generator=g) * 2 - 1)  # uniform: many large same-sign pairs
        model[0].weight.copy_(torch.rand(K, generator=g) + 0.5)
    x = torch.randn(1, TOKENS, K, generator=g) * 2
    rule = LayerRule(
        "1",
        weight=weight_spec(bits=weight_bits),
        activation=activation_spec(bits=8, observer="minmax"),
    )
    q = prepare_qat(model.eval(), Recipe(name="ln-linear", rules=(rule,), targets=("",)))
    calibrate(q, forward_loop=lambda m: m(x), progress=False)
    return freeze(q), x


def export(model: nn.Module, x: torch.Tensor, path: Path, target_cpu: str = "vnni") -> Path:
    return export_module(model, (x,), path, input_names=("x",), output_names=("y",), target_cpu=target_cpu)


def spec_and_input(model: nn.Module, x: torch.Tensor) -> tuple[Int8Layer, np.ndarray]:
    """The Linear in integer form and the float input it receives (the LayerNorm output), [TOKENS, K]."""
    with torch.no_grad():
        h = model[0](x)
    return int8_layers(model)["1"], h.reshape(-1, K).numpy()
