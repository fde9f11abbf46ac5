"""Hiera's pooled-query attention in small, under its real SAM 2 name (``image_encoder.trunk.blocks.0.attn``):
fused qkv, q max-pooled over the token map, ``F.scaled_dot_product_attention``. Stable API:
``frozen_pooled(bits)`` (W7A8 Linears, attention at ``bits``, calibrated, frozen), ``pooled_tokens(seed)``,
``export_pooled(model, path)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.recipe import SCHEMA_VERSION, Recipe

DIM, HEADS, SIDE = 16, 2, 4


class MultiScaleAttention(nn.Module):
    """Hiera's pooled-query attention in small: fused qkv, q max-pooled over the token map, SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.q_pool = nn.MaxPool2d(2, 2)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q, k, v = torch.unbind(self.qkv(x).reshape(b, h * w, 3, HEADS, -1), 2)
        q = self.q_pool(q.reshape(b, h, w, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        q = q.reshape(b, -1, HEADS, DIM // HEADS)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, -1, DIM))


class _Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].attn = MultiScaleAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[0].attn(x)


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = nn.Module()
        self.image_encoder.trunk = _Trunk()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_encoder.trunk(x)


def pooled_tokens(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, SIDE, SIDE, DIM, generator=torch.Generator().manual_seed(seed))


def frozen_pooled(bits: int) -> nn.Module:
    torch.manual_seed(0)
    recipe = Recipe.from_dict(
        {
            "version": SCHEMA_VERSION,
            "name": "t",
            "rules": [{"match": "type:Linear", "weight": {"bits": 7}, "activation": {"bits": 8}}],
            "attention": [{"match": "type:MultiScaleAttention", "bits": bits}],
        }
    )
    q = prepare_qat(TinyEncoder(), recipe)
    return freeze(calibrate(q, forward_loop=lambda m: [m(pooled_tokens(s)) for s in range(4)]))


def export_pooled(model: nn.Module, path):  # type: ignore[no-untyped-def]
    return export_module(
        model, (pooled_tokens(),), path, input_names=("x",), output_names=("y",), target_cpu="any"
    )
