"""Distillation data sources: image folders, the SA-V layout ``JPEGImages/<video>/<frame>.jpg``, bundled
photos, and the data-parallel shard. Turning images into batches is the model family's job (SAM 2:
:func:`sam2_quant_plugin.sam2.batches.make_batches`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io.images import IMAGE_SUFFIXES, bundled_images, list_images

log = logging.getLogger(__name__)

#: one batch of distillation data, as the model family's task takes it (SAM 2: a PromptBatch)
Batch = Any


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


def shard(batches: list[Any], rank: int, world: int) -> list[Any]:
    """Rank ``rank``'s share of ``batches`` (round robin) for data-parallel training."""
    return batches[rank::world] if world > 1 else batches
