"""A tiny torch model whose Linear/Conv2d/LayerNorm modules carry real SAM 2 module names.

Fast stand-in for ``sam2.1_hiera_t`` in unit tests of resolve / prepare / freeze / convert: a 4x4 patch
embedding, two Hiera-like blocks (LayerNorm, qkv/proj attention, two-layer MLP), a 1x1 FPN-neck conv and
a mask-decoder-like block (q/k/v/out projections and a hypernetwork MLP). Widths are 8..48.

Stable API (other tests import it): ``make_tiny_sam2_like(seed=0) -> nn.Module`` and
``tiny_input(batch=2) -> Tensor``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import nn

DIM = 16
IMAGE = 16  # input is [B, 3, 16, 16]; the patch embedding makes a 4x4 token grid

#: Every Linear/Conv2d of the tiny model, name -> type name (what ``resolve`` can select).
TINY_LAYERS: dict[str, str] = {
    "image_encoder.trunk.patch_embed.proj": "Conv2d",
    **{
        f"image_encoder.trunk.blocks.{i}.{leaf}": "Linear"
        for i in range(2)
        for leaf in ("attn.qkv", "attn.proj", "mlp.layers.0", "mlp.layers.1")
    },
    "image_encoder.neck.convs.0.conv": "Conv2d",
    **{
        f"sam_mask_decoder.transformer.layers.0.self_attn.{p}": "Linear"
        for p in ("q_proj", "k_proj", "v_proj", "out_proj")
    },
    "sam_mask_decoder.output_hypernetworks_mlps.0.layers.0": "Linear",
    "sam_mask_decoder.output_hypernetworks_mlps.0.layers.1": "Linear",
}


class _Mlp(nn.Module):
    def __init__(self, dims: tuple[int, ...], act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


class _Attention(nn.Module):
    """Single-head attention with a fused qkv projection, as in Hiera's MultiScaleAttention."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return self.proj(att @ v)


class _Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp((dim, 2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _Trunk(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed(dim)
        self.blocks = nn.ModuleList(_Block(dim) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # [B, C, 4, 4]
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        for blk in self.blocks:
            t = blk(t)
        return t.transpose(1, 2).reshape(b, c, h, w)


class _ConvModule(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Neck(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_ConvModule(dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs[0](x)


class _ImageEncoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trunk = _Trunk(dim)
        self.neck = _Neck(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.trunk(x))


class _DecoderAttention(nn.Module):
    """SAM's two-way-transformer ``Attention``: separate q/k/v/out projections."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
        att = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return self.out_proj(att @ v)


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.self_attn = _DecoderAttention(dim)
        self.norm1 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm1(x + self.self_attn(x, x, x))


class _Transformer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_DecoderLayer(dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class _MaskDecoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transformer = _Transformer(dim)
        self.output_hypernetworks_mlps = nn.ModuleList([_Mlp((dim, dim, dim // 2), act=nn.ReLU)])

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(embed.flatten(2).transpose(1, 2))  # [B, HW, C]
        hyper = self.output_hypernetworks_mlps[0](tokens.mean(dim=1))  # [B, C/2]
        return torch.einsum("bc,bnc->bn", hyper, tokens[..., : hyper.shape[-1]])  # [B, HW] mask logits


class TinySam2Like(nn.Module):
    """Image [B, 3, 16, 16] -> mask logits [B, 16]; module names follow ``SAM2Base``."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.image_encoder = _ImageEncoder(dim)
        self.sam_mask_decoder = _MaskDecoder(dim)
        self.image_size = IMAGE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sam_mask_decoder(self.image_encoder(x))


def make_tiny_sam2_like(seed: int = 0) -> nn.Module:
    """A freshly initialised :class:`TinySam2Like` (eval mode), deterministic in ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinySam2Like()
    return model.eval()


def tiny_input(batch: int = 2, seed: int = 1) -> torch.Tensor:
    """A deterministic normalised-image-like input ``[batch, 3, 16, 16]`` for the tiny model."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, IMAGE, IMAGE, generator=g)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the previous count.

    Tiny tensors gain nothing from a thread pool, and on a busy 2-core machine OpenMP's spin-waiting
    makes each small op ~100x slower with 2 threads than with 1; the fast tests use ``torch_threads(1)``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
