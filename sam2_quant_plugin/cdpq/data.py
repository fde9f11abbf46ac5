"""Distillation data sources: image folders, SA-V roots (frames + object masks, :mod:`..io.sav`), bundled
photos, and the data-parallel shard. Turning images into batches is the model family's job (SAM 2:
:func:`sam2_quant_plugin.sam2.batches.make_batches`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..io.images import bundled_images, list_images
from ..io.sav import SavFrame, sav_layout, sav_samples

log = logging.getLogger(__name__)

#: one batch of distillation data, as the model family's task takes it (SAM 2: a PromptBatch)
Batch = Any


def sav_frames(root: str | Path, frames_per_video: int | None = None) -> list[Path]:
    """Frames of an SA-V root (see :func:`sam2_quant_plugin.io.sav.sav_samples`): annotated frames of
    annotated videos, every frame otherwise; ``frames_per_video`` keeps that many evenly spaced."""
    return [s.image for s in sav_samples(root, frames_per_video)]


def find_samples(source: str | Path | None, frames_per_video: int | None = None) -> list[SavFrame]:
    """Images with their object masks: bundled photos for None, an SA-V root (``JPEGImages_24fps`` /
    ``JPEGImages``) with its annotations, else a folder of images (no masks)."""
    if source is None:
        return [SavFrame(p) for p in bundled_images()]
    if sav_layout(source) is not None:
        return sav_samples(source, frames_per_video)
    return [SavFrame(p) for p in list_images(source)]


def find_images(source: str | Path | None, frames_per_video: int | None = None) -> list[Path]:
    """Image paths of :func:`find_samples`."""
    return [s.image for s in find_samples(source, frames_per_video)]


def shard(batches: list[Any], rank: int, world: int) -> list[Any]:
    """Rank ``rank``'s share of ``batches`` (round robin) for data-parallel training."""
    return batches[rank::world] if world > 1 else batches
