"""Quick fidelity of a quantized SAM 2 against its float teacher on photos (used by ``sam2-quant run``).

For each photo: encoder-feature cosine, and mask IoU of a point-grid's masks (student decoder vs
teacher decoder), degenerate teacher masks excluded. The full harness with baselines lives in
:mod:`sam2_quant_plugin.eval`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .eval.metrics import cosine, mask_iou
from .sam2.forward import decode, encode, point_grid
from .sam2.preprocess import to_model_input


@torch.no_grad()
def image_fidelity(
    teacher: nn.Module,
    student: nn.Module,
    images: Sequence[np.ndarray],
    *,
    image_size: int,
    points_per_side: int = 8,
) -> dict[str, float]:
    """Mean mask IoU (point grid) and mean embedding cosine of ``student`` vs ``teacher`` over ``images``."""
    grid = point_grid(points_per_side, image_size)[:, None, :]
    labels = torch.ones(grid.shape[0], 1)
    t_logits, s_logits, cosines = [], [], []
    for img in images:
        x = to_model_input([img], image_size)
        ft, fs = encode(teacher, x), encode(student, x)
        cosines.append(cosine(fs["image_embed"], ft["image_embed"]))
        t_logits.append(decode(teacher, ft, points=grid, labels=labels)["low_res_masks"])
        s_logits.append(decode(student, fs, points=grid, labels=labels)["low_res_masks"])
    res = mask_iou(torch.cat(s_logits), torch.cat(t_logits))
    return {"embed_cosine": float(np.mean(cosines)), **res.to_dict()}
