"""Deterministic prompts for the harness: a point grid, and boxes derived from the teacher's own masks."""

from __future__ import annotations

import torch
from torch import Tensor

from .metrics import degenerate, masks_from_logits


def mask_boxes(masks: Tensor, scale: float = 1.0) -> Tensor:
    """Tight ``(x0, y0, x1, y1)`` boxes of boolean masks ``[N, H, W]``, times ``scale``; empty masks -> 0s.

    ``x1``/``y1`` are exclusive (one past the last pixel), so a full ``H x W`` mask gives ``(0, 0, W, H)``.
    """
    if masks.dim() != 3:
        raise ValueError(f"mask_boxes expects [N, H, W] masks, got {tuple(masks.shape)}")
    boxes = torch.zeros(masks.shape[0], 4, dtype=torch.float32)
    rows, cols = masks.any(-1), masks.any(-2)  # [N, H], [N, W]
    for i in range(masks.shape[0]):
        ys, xs = rows[i].nonzero().flatten(), cols[i].nonzero().flatten()
        if len(ys):
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return boxes * scale


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of boxes ``a [N, 4]`` and ``b [M, 4]`` (x0, y0, x1, y1)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp_min(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp_min(0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-9)


def fixed_boxes(image_size: int, n_per_side: int = 3) -> Tensor:
    """``n*n`` boxes of side ``S/n`` centred on a grid, shrunk by 10%: a prompt set that needs no model."""
    cell = image_size / n_per_side
    boxes = []
    for iy in range(n_per_side):
        for ix in range(n_per_side):
            x0, y0 = ix * cell + 0.1 * cell, iy * cell + 0.1 * cell
            boxes.append([x0, y0, x0 + 0.8 * cell, y0 + 0.8 * cell])
    return torch.tensor(boxes, dtype=torch.float32)


def boxes_from_teacher(
    teacher_logits: Tensor,
    image_size: int,
    *,
    max_boxes: int = 16,
    dedupe_iou: float = 0.9,
    seed: int = 0,
    mode: str = "both",
) -> tuple[Tensor, str]:
    """Box prompts ``[K, 4]`` (model-input pixels) from the teacher's non-degenerate point-prompt masks.

    ``teacher_logits`` is ``[N, 1, h, w]`` low-res logits. Near-duplicate boxes (IoU >= ``dedupe_iou``)
    are dropped; if more than ``max_boxes`` remain a seeded random subset is kept (sorted, so the order
    is stable). ``mode``: ``"teacher"`` (these boxes; the fixed grid only when every teacher mask is
    degenerate, e.g. random-init weights), ``"fixed"`` (:func:`fixed_boxes` only) or ``"both"`` (teacher
    boxes then the fixed grid). Returns ``(boxes, source)``, source naming what was used.
    """
    if mode not in ("teacher", "fixed", "both"):
        raise ValueError(f"box mode must be 'teacher', 'fixed' or 'both', got {mode!r}")
    grid = fixed_boxes(image_size)
    masks = masks_from_logits(teacher_logits.flatten(0, -3))
    keep = ~degenerate(masks)
    if mode == "fixed" or not keep.any():
        return grid, f"{len(grid)} fixed-grid"
    scale = image_size / masks.shape[-1]
    cand = mask_boxes(masks[keep], scale)
    chosen: list[int] = []
    for i in range(len(cand)):
        if not chosen or box_iou(cand[i : i + 1], cand[chosen]).max() < dedupe_iou:
            chosen.append(i)
    if len(chosen) > max_boxes:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(chosen), generator=gen)[:max_boxes].sort().values
        chosen = [chosen[int(j)] for j in pick]
    if mode == "both":
        return torch.cat([cand[chosen], grid]), f"{len(chosen)} teacher-masks + {len(grid)} fixed-grid"
    return cand[chosen], f"{len(chosen)} teacher-masks"
