"""SAM 2 distillation batches: photos at the model size with point/box prompts drawn from a seed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from ..io.images import load_image
from .preprocess import to_model_input

log = logging.getLogger(__name__)


@dataclass
class PromptBatch:
    """``images [B, 3, S, S]``; per image ``P`` single-point prompts and ``Q`` box prompts (model pixels)."""

    images: Tensor
    points: Tensor  # [B, P, 2]
    labels: Tensor  # [B, P]
    boxes: Tensor | None = None  # [B, Q, 4]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def sample_prompts(
    n_images: int, image_size: int, n_points: int, n_boxes: int, seed: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Points uniform in the central 80% and boxes of 20-60% side, from ``torch.Generator(seed)``."""
    g = torch.Generator().manual_seed(seed)
    s = float(image_size)
    points = (0.1 + 0.8 * torch.rand(n_images, n_points, 2, generator=g)) * s
    labels = torch.ones(n_images, n_points, dtype=torch.int64)
    boxes = None
    if n_boxes:
        centre = (0.2 + 0.6 * torch.rand(n_images, n_boxes, 2, generator=g)) * s
        half = (0.1 + 0.2 * torch.rand(n_images, n_boxes, 2, generator=g)) * s
        boxes = torch.cat([(centre - half).clamp(0, s), (centre + half).clamp(0, s)], dim=-1)
    return points, labels, boxes


def make_batches(
    paths: list[Path],
    image_size: int,
    *,
    batch_size: int = 1,
    n_points: int = 4,
    n_boxes: int = 2,
    seed: int = 0,
) -> list[PromptBatch]:
    """Load, resize and normalise ``paths`` into prompted batches; prompts depend only on ``seed``."""
    if not paths:
        raise DataError("no images to distil on; pass a folder of .jpg/.png or an SA-V root")
    arrays = [load_image(p) for p in paths]
    points, labels, boxes = sample_prompts(len(arrays), image_size, n_points, n_boxes, seed)
    out = []
    for i in range(0, len(arrays), batch_size):
        sl = slice(i, i + batch_size)
        b = None if boxes is None else boxes[sl]
        out.append(PromptBatch(to_model_input(arrays[sl], image_size), points[sl], labels[sl], b))
    log.info("%d image(s) in %d batch(es) at %d px, seed %d", len(arrays), len(out), image_size, seed)
    return out
