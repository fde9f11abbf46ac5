"""SAM 2 distillation batches: photos at the model size with point/box prompts, drawn from a seed or from
SA-V object masks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ..io.images import load_image
from ..io.sav import read_mask
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


def _mask_like(path: Path, image: np.ndarray) -> np.ndarray:
    mask = read_mask(path)
    if mask.shape != image.shape[:2]:
        raise DataError(
            f"annotation {path} is {mask.shape[1]}x{mask.shape[0]} but its frame is "
            f"{image.shape[1]}x{image.shape[0]}. Fix: use the annotations of these frames."
        )
    return mask


def prompts_from_masks(
    masks: Sequence[np.ndarray], image_size: int, n_points: int, n_boxes: int, g: torch.Generator
) -> tuple[Tensor, Tensor] | None:
    """Points inside and tight boxes around object masks, in model pixels; None when every mask is empty.

    Objects are taken in turn (point ``j`` and box ``j`` come from object ``j mod n_objects``); each point
    is a pixel drawn uniformly from its object's mask (its centre, scaled to the square model input).
    """
    objects = [m for m in masks if m.any()]
    if not objects:
        return None
    h, w = objects[0].shape
    scale = torch.tensor([image_size / w, image_size / h])
    points = torch.empty(n_points, 2)
    for j in range(n_points):
        ys, xs = np.nonzero(objects[j % len(objects)])
        k = int(torch.randint(len(xs), (1,), generator=g))
        points[j] = (torch.tensor([float(xs[k]), float(ys[k])]) + 0.5) * scale
    boxes = torch.empty(n_boxes, 4)
    for j in range(n_boxes):
        ys, xs = np.nonzero(objects[j % len(objects)])
        corners = torch.tensor([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
        boxes[j] = corners * scale.repeat(2)
    return points, boxes


def make_batches(
    paths: list[Path],
    image_size: int,
    *,
    batch_size: int = 1,
    n_points: int = 4,
    n_boxes: int = 2,
    seed: int = 0,
    masks: Sequence[Sequence[Path]] | None = None,
) -> list[PromptBatch]:
    """Load, resize and normalise ``paths`` into prompted batches; prompts depend only on ``seed``.

    ``masks[i]`` (SA-V annotations of image ``i``, see :func:`sam2_quant_plugin.io.sav.sav_samples`) turns
    image ``i``'s prompts into points inside and boxes around its objects; images without masks get random
    prompts (points in the central 80%, boxes of 20-60% side).
    """
    if not paths:
        raise DataError("no images to distil on; pass a folder of .jpg/.png or an SA-V root")
    arrays = [load_image(p) for p in paths]
    points, labels, boxes = sample_prompts(len(arrays), image_size, n_points, n_boxes, seed)
    g = torch.Generator().manual_seed(seed + 7919)
    from_masks = 0
    for i, mask_paths in enumerate(masks or []):
        got = prompts_from_masks(
            [_mask_like(p, arrays[i]) for p in mask_paths], image_size, n_points, n_boxes, g
        )
        if got is not None:
            points[i] = got[0]
            if boxes is not None:
                boxes[i] = got[1]
            from_masks += 1
    if masks:
        log.info("prompts from annotation masks on %d of %d image(s)", from_masks, len(arrays))
    out = []
    for i in range(0, len(arrays), batch_size):
        sl = slice(i, i + batch_size)
        b = None if boxes is None else boxes[sl]
        out.append(PromptBatch(to_model_input(arrays[sl], image_size), points[sl], labels[sl], b))
    log.info("%d image(s) in %d batch(es) at %d px, seed %d", len(arrays), len(out), image_size, seed)
    return out
