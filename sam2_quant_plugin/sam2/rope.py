"""Real-valued rotary position encoding (RoPE) for SAM 2's memory attention.

SAM 2's ``RoPEAttention`` rotates query/key channel pairs with complex numbers (``torch.polar``,
``view_as_complex``), which the ONNX exporter cannot lower. The rotation of a pair ``(x0, x1)`` by angle
``a`` is the same as ``(x0*cos a - x1*sin a, x0*sin a + x1*cos a)``, so this module keeps cos/sin tables
as (non-persistent) buffers and does the rotation with real arithmetic only.

``patch_real_rope(model)`` swaps the class of every ``RoPEAttention`` to ``RealRoPEAttention`` in place.
The swap keeps ``isinstance(m, RoPEAttention)`` true, survives ``copy.deepcopy`` and leaves the
``state_dict`` unchanged (the tables are not persistent), so checkpoints load as before.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from sam2.modeling.sam.transformer import RoPEAttention
from torch import Tensor

logger = logging.getLogger(__name__)


def axial_rope_angles(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> Tensor:
    """Rotation angles ``[end_x*end_y, dim//2]`` of SAM 2's axial RoPE (``compute_axial_cis``' phases)."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: (dim // 4)].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def axial_rope_cos_sin(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Cos and sin tables, each ``[end_x*end_y, dim//2]``: the real/imag parts of SAM 2's ``freqs_cis``."""
    angles = axial_rope_angles(dim, end_x, end_y, theta)
    return torch.cos(angles), torch.sin(angles)


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs ``(x[..., 2i], x[..., 2i+1])`` of ``x [..., N, D]`` by tables ``[N, D//2]``."""
    pairs = x.float().reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos = cos.float()
    sin = sin.float()
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).type_as(x)


def apply_rotary_enc_real(
    xq: Tensor, xk: Tensor, cos: Tensor, sin: Tensor, repeat_freqs_k: bool = False
) -> tuple[Tensor, Tensor]:
    """Real-arithmetic twin of ``sam2.modeling.position_encoding.apply_rotary_enc``.

    ``xq`` is ``[B, heads, N, D]``; ``xk`` is ``[B, heads, Nk, D]`` with ``Nk == N``, or ``Nk == r*N`` when
    ``repeat_freqs_k`` (keys from ``r`` memory frames share the query's positions), or ``Nk == 0``.
    """
    xq_out = rotate_pairs(xq, cos, sin)
    if not torch.jit.is_tracing() and xk.shape[-2] == 0:
        return xq_out, xk
    if repeat_freqs_k:
        r = xk.shape[-2] // xq.shape[-2]
        cos = cos.repeat(r, 1)
        sin = sin.repeat(r, 1)
    return xq_out, rotate_pairs(xk, cos, sin)


class RealRoPEAttention(RoPEAttention):
    """``RoPEAttention`` whose rotary encoding uses real cos/sin tables (exportable to ONNX).

    Not constructed directly: ``patch_real_rope`` re-classes existing ``RoPEAttention`` modules.
    """

    rope_cos: Tensor
    rope_sin: Tensor

    def _init_real_tables(self) -> None:
        freqs_cis = self.freqs_cis
        self.register_buffer("rope_cos", freqs_cis.real.float().contiguous(), persistent=False)
        self.register_buffer("rope_sin", freqs_cis.imag.float().contiguous(), persistent=False)

    def _tables_for(self, n_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        # Shapes are fixed while tracing for export: skip the Python checks (and their TracerWarnings).
        if not torch.jit.is_tracing() and self.rope_cos.shape[0] != n_tokens:
            # Same fallback as SAM 2: assume a square feature map of n_tokens positions.
            side = math.sqrt(n_tokens)
            self.freqs_cis = self.compute_cis(end_x=side, end_y=side)
            self._init_real_tables()
        return self.rope_cos.to(device), self.rope_sin.to(device)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)

        cos, sin = self._tables_for(q.shape[-2], q.device)
        if not torch.jit.is_tracing() and q.shape[-2] != k.shape[-2] and not self.rope_k_repeat:
            raise ValueError(
                f"query has {q.shape[-2]} tokens but key has {k.shape[-2]} and rope_k_repeat is False; "
                "fix: only cross-attention built with rope_k_repeat=True takes keys from several frames."
            )

        num_k_rope = k.shape[-2] - num_k_exclude_rope
        q, k_rope = apply_rotary_enc_real(q, k[:, :, :num_k_rope], cos, sin, self.rope_k_repeat)
        if num_k_exclude_rope > 0:
            k = torch.cat([k_rope, k[:, :, num_k_rope:]], dim=-2)
        else:
            k = k_rope

        dropout_p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return self.out_proj(self._recombine_heads(out))


def patch_real_rope(model: torch.nn.Module) -> int:
    """Make every ``RoPEAttention`` in ``model`` (or ``model`` itself) use real-valued RoPE, in place.

    Returns how many modules were patched; modules already patched are skipped (so a second call returns 0).
    """
    patched = 0
    for module in model.modules():
        if isinstance(module, RoPEAttention) and not isinstance(module, RealRoPEAttention):
            module.__class__ = RealRoPEAttention
            module._init_real_tables()
            patched += 1
    logger.info("patch_real_rope: %d RoPEAttention module(s) now use real-valued RoPE", patched)
    return patched
