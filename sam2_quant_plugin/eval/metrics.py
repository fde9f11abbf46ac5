"""Fidelity metrics against the float teacher: mask IoU, feature cosine, degenerate-mask handling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two tensors flattened (float64, on the CPU: they may sit on different devices)."""
    a, b = a.detach().cpu().double().flatten(), b.detach().cpu().double().flatten()
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    return float((a.detach().cpu().double() - b.detach().cpu().double()).abs().max())


def masks_from_logits(logits: Tensor, threshold: float = 0.0) -> Tensor:
    """Binary masks (bool) from mask logits, SAM 2's convention: logit > 0."""
    return logits > threshold


def degenerate(masks: Tensor, frac: float = 0.001) -> Tensor:
    """Per mask (over the last two dims): True if (almost) empty or (almost) full."""
    area = masks.flatten(-2).float().mean(-1)
    return (area <= frac) | (area >= 1.0 - frac)


@dataclass(frozen=True)
class IoUResult:
    """Mean IoU over non-degenerate teacher masks, with the share of masks excluded."""

    mean_iou: float
    n_masks: int
    n_degenerate: int

    @property
    def degenerate_share(self) -> float:
        return self.n_degenerate / self.n_masks if self.n_masks else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "mask_iou": self.mean_iou,
            "n_masks": self.n_masks,
            "n_degenerate": self.n_degenerate,
            "degenerate_share": self.degenerate_share,
        }


def mask_iou(student_logits: Tensor, teacher_logits: Tensor, threshold: float = 0.0) -> IoUResult:
    """IoU of student vs teacher masks, masks ``[..., H, W]``; degenerate teacher masks are excluded.

    A teacher mask that is empty or full says nothing about quality (every student that is also empty
    scores 1), so it is counted in ``n_degenerate`` and left out of the mean.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"shape mismatch: student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}"
        )
    student_logits, teacher_logits = student_logits.detach().cpu(), teacher_logits.detach().cpu()
    s = (
        masks_from_logits(student_logits, threshold).flatten(0, -3)
        if student_logits.dim() > 2
        else masks_from_logits(student_logits, threshold)[None]
    )
    t = (
        masks_from_logits(teacher_logits, threshold).flatten(0, -3)
        if teacher_logits.dim() > 2
        else masks_from_logits(teacher_logits, threshold)[None]
    )
    keep = ~degenerate(t)
    inter = (s & t).flatten(-2).sum(-1).double()
    union = (s | t).flatten(-2).sum(-1).double()
    iou = inter / union.clamp_min(1)
    n = int(t.shape[0])
    n_deg = int((~keep).sum())
    mean = float(iou[keep].mean()) if keep.any() else float("nan")
    return IoUResult(mean, n, n_deg)
