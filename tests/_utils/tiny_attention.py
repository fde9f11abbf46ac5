"""A tiny model whose attention modules call ``F.scaled_dot_product_attention`` under real SAM 2 names.

``image_encoder.trunk.blocks.{0,1}.attn`` are ``MultiScaleAttention`` (fused qkv, heads, SDPA without
arguments, as Hiera's); ``sam_mask_decoder.transformer.layers.0.self_attn`` is an ``Attention`` (q/k/v
projections, ``dropout_p`` passed, as SAM 2's). ``image_encoder.trunk.blocks.0.mlp`` is a Linear that
calls no attention. Stable API: ``make_tiny_attention(seed=0)``, ``tiny_tokens(batch=2)``, ``ATTN_MODULES``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIM, HEADS, TOKENS = 16, 2, 12
ATTN_MODULES = {
    "image_encoder.trunk.blocks.0.attn": "MultiScaleAttention",
    "image_encoder.trunk.blocks.1.attn": "MultiScaleAttention",
    "sam_mask_decoder.transformer.layers.0.self_attn": "Attention",
}


class MultiScaleAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = torch.unbind(self.qkv(x).reshape(b, n, 3, HEADS, -1), 2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Attention(nn.Module):
    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(DIM, DIM) for _ in range(3))
        self.out_proj = nn.Linear(DIM, DIM)
        self.dropout_p = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], HEADS, -1).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        dropout_p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return self.out_proj(out.transpose(1, 2).reshape(out.shape[0], -1, DIM))


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = MultiScaleAttention()
        self.mlp = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class _Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Block(), _Block()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = Attention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.self_attn(q=x, k=x, v=x)


class TinyAttentionModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = nn.Module()
        self.image_encoder.trunk = _Trunk()
        self.sam_mask_decoder = nn.Module()
        self.sam_mask_decoder.transformer = nn.Module()
        self.sam_mask_decoder.transformer.layers = nn.ModuleList([_Layer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sam_mask_decoder.transformer.layers[0](self.image_encoder.trunk(x))


def make_tiny_attention(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TinyAttentionModel().eval()


def tiny_tokens(batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, TOKENS, DIM, generator=g)
