"""The fake-quant training op: torch's kernel in the forward, torch's learnable-kernel gradients back.

Forward, per element (what ``torch.fake_quantize_per_{tensor,channel}_affine`` computes)::

    q = clamp(round(x * (1 / s)) + z, qmin, qmax)        out = (q - z) * s

Backward (``torch._fake_quantize_learnable_per_*_affine`` with ``grad_factor=1``), with ``r`` the
unclamped rounded code ``round(x * (1 / s)) + z``; a code *on* qmin or qmax counts as inside:

    ============  =========  ==========================  ========  ================
    where         d/dx       d/ds                        d/dz      d/dqmin, d/dqmax
    ============  =========  ==========================  ========  ================
    qmin<=r<=qmax 1          ((r - z) * s - x) / s       0         0, 0
    r < qmin      0          qmin - z                    -s        s, 0
    r > qmax      0          qmax - z                    -s        0, s
    ============  =========  ==========================  ========  ================

+/-inf (and values whose code overflows) saturate at qmax / qmin like any other out-of-range value;
NaN lands on qmin (torch's per-tensor kernel does the same). ``s``, ``z``, ``qmin`` and ``qmax`` may be
any shape that broadcasts against ``x``; their gradients are summed back to that shape.
"""

from __future__ import annotations

from typing import Any

import torch


def _codes(
    x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse scale, unclamped code ``r``, and the masks ``r < lo`` (NaN included) and ``r > hi``."""
    inv = torch.reciprocal(s)
    r = torch.round(x * inv) + z
    below = ~(r >= lo)
    above = r > hi
    return inv, r, below, above


def _sum_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return g.sum_to_size(like.shape) if g.shape != like.shape else g


class FakeQuantizeFn(torch.autograd.Function):
    """``FakeQuantizeFn.apply(x, s, z, qmin, qmax)``, all tensors; see the module docstring."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
    ) -> torch.Tensor:
        _inv, r, below, above = _codes(x, s, z, lo, hi)
        q = torch.where(above, hi, torch.where(below, lo, r))
        ctx.save_for_backward(x, s, z, lo, hi)
        return (q - z) * s

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, s, z, lo, hi = ctx.saved_tensors
        need_x, need_s, need_z, need_lo, need_hi = ctx.needs_input_grad
        inv, r, below, above = _codes(x, s, z, lo, hi)
        outside = below | above
        zero = torch.zeros((), dtype=g.dtype, device=g.device)
        gx = gs = gz = glo = ghi = None
        if need_x:
            gx = torch.where(outside, zero, g)
        if need_s:
            # inside: (x_fq - x) / s as torch's kernel computes it; x is zeroed outside so that an inf
            # input does not turn the unused branch into NaN
            x_in = torch.where(outside, zero, x)
            inside = ((torch.where(outside, zero, r) - z) * s - x_in) * inv
            ds = torch.where(above, hi - z, torch.where(below, lo - z, inside))
            gs = _sum_to(g * ds, s)
        if need_z:
            gz = _sum_to(torch.where(outside, -g * s, zero), z)
        if need_lo:
            glo = _sum_to(torch.where(below, g * s, zero), lo)
        if need_hi:
            ghi = _sum_to(torch.where(above, g * s, zero), hi)
        return gx, gs, gz, glo, ghi
