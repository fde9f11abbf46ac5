"""Distillation losses: per-layer statistics/feature/affinity terms and stage/output-level KD.

All terms are normalised so that a perfect student scores 0: feature MSE is divided by the teacher's
variance and the mask term subtracts the teacher's own entropy from the soft-target BCE.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import LossWeights
from .features import Captured

EPS = 1e-8
MAX_AFFINITY_TOKENS = 256


def _channels_last(c: Captured) -> Tensor:
    x = c.value.float()
    if c.ch_dim != -1 and x.dim() > 1:
        x = x.movedim(c.ch_dim, -1)
    return x.reshape(-1, x.shape[-1])


def layer_stats_loss(t: Captured, s: Captured) -> Tensor:
    """MSE of per-channel mean and variance, relative to the teacher's mean variance."""
    tx, sx = _channels_last(t), _channels_last(s)
    tv, sv = tx.var(0, unbiased=False), sx.var(0, unbiased=False)
    norm = tv.mean() + EPS
    return (F.mse_loss(sx.mean(0), tx.mean(0)) + F.mse_loss(sv, tv) / norm) / norm


def feature_loss(t: Captured, s: Captured) -> Tensor:
    """Feature MSE divided by the teacher's variance (scale-free, comparable across layers)."""
    tv = t.value.float()
    return F.mse_loss(s.value.float(), tv) / (tv.var(unbiased=False) + EPS)


def affinity_loss(t: Captured, s: Captured) -> Tensor:
    """MSE between token-affinity matrices (cosine Gram over at most 256 strided tokens)."""
    tx, sx = _channels_last(t), _channels_last(s)
    step = max(1, tx.shape[0] // MAX_AFFINITY_TOKENS)
    tx, sx = F.normalize(tx[::step], dim=-1), F.normalize(sx[::step], dim=-1)
    return F.mse_loss(sx @ sx.T, tx @ tx.T)


def mask_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Soft-target BCE minus the teacher's entropy (a per-pixel KL): 0 when the logits agree."""
    t = teacher_logits.float() / temperature
    s = student_logits.float() / temperature
    p = torch.sigmoid(t)
    return F.binary_cross_entropy_with_logits(s, p) - F.binary_cross_entropy_with_logits(t, p)


def _normalised_mse(t: Tensor, s: Tensor) -> Tensor:
    return F.mse_loss(s.float(), t.float()) / (t.float().var(unbiased=False) + EPS)


def _embed_loss(t_out: Mapping[str, object], s_out: Mapping[str, object]) -> Tensor | None:
    pairs = []
    if "image_embed" in t_out and "image_embed" in s_out:
        pairs.append((t_out["image_embed"], s_out["image_embed"]))
    for tf, sf in zip(t_out.get("high_res_feats", []) or [], s_out.get("high_res_feats", []) or []):
        pairs.append((tf, sf))
    if not pairs:
        return None
    return sum(_normalised_mse(t, s) for t, s in pairs)


def distill_loss(
    t_out: Mapping[str, object],
    s_out: Mapping[str, object],
    t_layers: Mapping[str, Captured],
    s_layers: Mapping[str, Captured],
    weights: LossWeights,
) -> tuple[Tensor, dict[str, float], dict[str, float]]:
    """Weighted sum of every active term. Returns (total, {term: value}, {layer: layer-level loss}).

    Layer terms are computed for the names captured on both sides (none when the architectures differ,
    in which case only the stage/output terms remain).
    """
    total = torch.zeros(())
    parts: dict[str, float] = {}
    per_layer: dict[str, float] = {}

    def add(term: str, value: Tensor | None, w: float) -> None:
        nonlocal total
        if value is None or w == 0:
            return
        total = total + w * value
        parts[term] = parts.get(term, 0.0) + float(value.detach())

    for name in [n for n in t_layers if n in s_layers]:
        t, s = t_layers[name], s_layers[name]
        layer = torch.zeros(())
        for term, w, fn in (
            ("stats", weights.stats, layer_stats_loss),
            ("feature", weights.feature, feature_loss),
            ("affinity", weights.affinity, affinity_loss),
        ):
            if w:
                v = fn(t, s)
                add(term, v, w)
                layer = layer + w * v.detach()
        per_layer[name] = float(layer)
    add("embed", _embed_loss(t_out, s_out), weights.embed)
    for key, t in t_out.items():  # "output": the whole model's; "output:<module>": a module's
        s = s_out.get(key)
        if (key == "output" or key.startswith("output:")) and isinstance(t, Tensor) and isinstance(s, Tensor):
            add("output", _normalised_mse(t, s), weights.output)
    if "low_res_masks" in t_out and "low_res_masks" in s_out:
        add(
            "mask", mask_kd(s_out["low_res_masks"], t_out["low_res_masks"], weights.temperature), weights.mask
        )
    if "iou_predictions" in t_out and "iou_predictions" in s_out:
        add(
            "iou", F.mse_loss(s_out["iou_predictions"].float(), t_out["iou_predictions"].float()), weights.iou
        )
    return total, parts, per_layer
