"""Distillation data: image folders, the SA-V layout ``JPEGImages/<video>/<frame>.jpg``, bundled photos,
and point/box prompts drawn deterministically from a seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from ..sam2.preprocess import IMAGE_SUFFIXES, bundled_images, list_images, load_image, to_model_input

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


def sav_frames(root: str | Path, frames_per_video: int | None = None) -> list[Path]:
    """Frames of an SA-V style tree ``root/JPEGImages/<video>/<frame>.jpg`` (videos and frames sorted).

    ``frames_per_video`` keeps that many frames evenly spaced per video (all when None).
    """
    base = Path(root) / "JPEGImages"
    if not base.is_dir():
        raise DataError(
            f"{root} has no JPEGImages/ folder; expected the SA-V layout JPEGImages/<video>/*.jpg"
        )
    out: list[Path] = []
    for video in sorted(p for p in base.iterdir() if p.is_dir()):
        frames = sorted(p for p in video.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if frames_per_video and len(frames) > frames_per_video:
            step = len(frames) / frames_per_video
            frames = [frames[int(i * step)] for i in range(frames_per_video)]
        out.extend(frames)
    if not out:
        raise DataError(f"{base} holds no frames; expected JPEGImages/<video>/<frame>.jpg")
    return out


def find_images(source: str | Path | None, frames_per_video: int | None = None) -> list[Path]:
    """Image paths: bundled photos for None, SA-V frames when ``source/JPEGImages`` exists, else a folder."""
    if source is None:
        return bundled_images()
    if (Path(source) / "JPEGImages").is_dir():
        return sav_frames(source, frames_per_video)
    return list_images(source)


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


def shard(batches: list[PromptBatch], rank: int, world: int) -> list[PromptBatch]:
    """Rank ``rank``'s share of ``batches`` (round robin) for data-parallel training."""
    return batches[rank::world] if world > 1 else batches
