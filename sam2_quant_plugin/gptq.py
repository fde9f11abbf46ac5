"""GPTQ rounding for Linear weights: error-compensating, one input column at a time.

Round-to-nearest treats every weight alone. GPTQ rounds the columns of ``W [N, K]`` in order and, after each
one, moves that column's rounding error onto the columns not rounded yet, in the proportions that keep
``X @ W.T`` closest for the layer's real inputs ``X``: the weights of the error spread are rows of the
Cholesky factor of the inverse input Hessian ``H = X.T @ X / n``. Scales are symmetric, taken per output
channel from the float weight, or per group (``group_size`` columns) from the weights as they stand when
the group's first column is reached, so earlier errors are already folded in.

A recipe asks for it per layer with ``weight: {rounding: gptq}``; :func:`~sam2_quant_plugin.calibrate`
collects the Hessians during its forward loop and then calls :func:`apply_gptq`, which writes the rounded
weights (exactly on their grid) into the layer and the scales into its quantizer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

from .numerics import qparams_from_minmax, qrange

log = logging.getLogger(__name__)
DAMP = 0.01  # added to the Hessian diagonal, as a fraction of its mean
BLOCK = 128  # columns rounded between two lazy updates of the rest of the matrix


class HessianStats:
    """Running ``sum(x x^T)`` and sample count of each named layer's input features."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).double()
        if name not in self.sums:
            self.sums[name] = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
            self.counts[name] = 0
        self.sums[name] += x.T @ x
        self.counts[name] += x.shape[0]

    def hessian(self, name: str) -> torch.Tensor:
        if not self.counts.get(name):
            raise ValueError(f"{name}: GPTQ saw no input for this layer; the forward loop must run it")
        return (self.sums[name] / self.counts[name]).float()


@contextlib.contextmanager
def collect_hessians(model: nn.Module, names: list[str]) -> Iterator[HessianStats]:
    """Record the input of each layer in ``names`` while the block runs (forward pre-hooks)."""
    stats = HessianStats()
    handles = []
    for name in names:
        layer = model.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise TypeError(
                f"{name}: GPTQ rounding is implemented for Linear layers, not {type(layer).__name__}"
            )
        handles.append(layer.register_forward_pre_hook(lambda _m, args, n=name: stats.add(n, args[0])))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def _snap(w: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Round ``w`` to the nearest point of the symmetric grid ``scale * [qmin, qmax]`` (broadcasting)."""
    return torch.clamp(torch.round(w / scale), qmin, qmax) * scale


def _group_scale(w: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    scale, _ = qparams_from_minmax(w.min(dim=1).values, w.max(dim=1).values, qmin, qmax, symmetric=True)
    return scale


def gptq_round(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    qmin: int,
    qmax: int,
    group_size: int = 0,
    damp: float = DAMP,
    block: int = BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rounded weight [N, K], scales)`` for a symmetric signed grid ``[qmin, qmax]``.

    ``scales`` has ``N`` entries (per channel) or ``N * K / group_size`` ordered like
    :func:`~sam2_quant_plugin.numerics.to_groups`' rows. The rounded weight equals ``code * scale``.
    """
    w = weight.detach().float().clone()
    n, k = w.shape
    if group_size and k % group_size:
        raise ValueError(f"{k} input columns do not split into groups of {group_size}")
    h = hessian.detach().float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += torch.eye(k, device=h.device) * damp * torch.diag(h).mean()
    upper = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    block = max(block, group_size) if group_size else block
    block -= block % group_size if group_size else 0
    channel_scale = None if group_size else _group_scale(w, qmin, qmax)
    group_scales: list[torch.Tensor] = []
    out = torch.zeros_like(w)
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        wb, err, ub = w[:, b0:b1].clone(), torch.zeros(n, b1 - b0, device=w.device), upper[b0:b1, b0:b1]
        scale = channel_scale
        for i in range(b1 - b0):
            if group_size and i % group_size == 0:
                scale = _group_scale(wb[:, i : i + group_size], qmin, qmax)
                group_scales.append(scale)
            q = _snap(wb[:, i], scale, qmin, qmax)
            out[:, b0 + i] = q
            e = (wb[:, i] - q) / ub[i, i]
            wb[:, i:] -= e[:, None] * ub[i, i:][None, :]
            err[:, i] = e
        w[:, b1:] -= err @ upper[b0:b1, b1:]
    if group_size:
        return out, torch.stack(group_scales, dim=1).reshape(-1)  # [N, K/g] row-major = group rows
    return out, channel_scale  # type: ignore[return-value]


@torch.no_grad()
def gptq_layer(layer: nn.Module, hessian: torch.Tensor, name: str = "layer") -> float:
    """GPTQ-round one layer at its quantizer's current width: weight and scale replaced in place.

    Returns the output error ratio against round-to-nearest (see :func:`apply_gptq`). Used by
    :func:`apply_gptq` after calibration and by CDPQ for each bit-drop attempt (``rounding='gptq'``).
    """
    fq = layer.weight_fake_quant
    if not fq.symmetric or not fq.signed:
        raise ValueError(f"{name}: GPTQ rounding needs symmetric signed weights (symmetric: true)")
    qmin, qmax = qrange(fq.bits, fq.signed, fq.narrow_range)
    h = hessian.to(layer.weight.device)
    rounded, scale = gptq_round(layer.weight, h, qmin, qmax, getattr(fq, "group_size", 0))
    view = fq.quant_view(layer.weight)
    rtn_scale = _group_scale(view, qmin, qmax)[:, None]
    rtn = _snap(view, rtn_scale, qmin, qmax).reshape(layer.weight.shape)
    ratio = float(_output_error(layer.weight, rounded, h) / _output_error(layer.weight, rtn, h))
    layer.weight.copy_(rounded)
    scale = scale.to(fq.scale.dtype)
    fq.scale.data = scale.reshape(fq.scale.shape) if scale.numel() == fq.scale.numel() else scale
    fq.zero_point.data = torch.zeros_like(fq.scale.data, dtype=fq.zero_point.dtype)
    fq.scale_initialized.fill_(1)
    return ratio


@torch.no_grad()
def apply_gptq(model: nn.Module, stats: HessianStats) -> dict[str, float]:
    """GPTQ-round every layer in ``stats``: weight and quantizer scale replaced in place.

    Returns, per layer, the output error ratio ``tr(E H E^T) / tr(E_rtn H E_rtn^T)`` of GPTQ against
    round-to-nearest with the same kind of scales (below 1: GPTQ is closer on the recorded inputs).
    """
    ratios = {name: gptq_layer(model.get_submodule(name), stats.hessian(name), name) for name in stats.sums}
    if ratios:
        mean = sum(ratios.values()) / len(ratios)
        log.info(
            "GPTQ rounded %d layers; output error vs round-to-nearest: %.3f on average", len(ratios), mean
        )
    return ratios


def _output_error(w: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    e = (w - q).float()
    return torch.einsum("nk,kl,nl->", e, h, e).clamp_min(1e-30)
