"""SA-V as Meta ships it: frames and per-object annotation masks, found without a model.

The val/test releases (and ``sav_train`` after frame extraction) are laid out as::

    <root>/JPEGImages_24fps/<video_id>/00000.jpg ...        frames at 24 fps
    <root>/Annotations_6fps/<video_id>/<obj_id>/00000.png   one binary mask per object, every 4th frame

An older flat layout ``<root>/JPEGImages/<video_id>/*.jpg`` (optionally ``Annotations/<video_id>/<obj>/``)
is read too. Where a video has annotations only its annotated frames are used, each with its objects' masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)
#: (frames folder, annotations folder) per known layout, newest first
LAYOUTS = (("JPEGImages_24fps", "Annotations_6fps"), ("JPEGImages", "Annotations"))


@dataclass(frozen=True)
class SavFrame:
    """One frame and the masks of the objects annotated on it (empty when the video has none)."""

    image: Path
    masks: tuple[Path, ...] = ()


def sav_layout(root: str | Path) -> tuple[Path, Path] | None:
    """(frames dir, annotations dir) of an SA-V root, or None when ``root`` is not one."""
    for frames, anns in LAYOUTS:
        if (Path(root) / frames).is_dir():
            return Path(root) / frames, Path(root) / anns
    return None


def _frames(video: Path) -> list[Path]:
    return sorted(p for p in video.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _masks_by_frame(video_annotations: Path) -> dict[str, list[Path]]:
    """Frame stem -> the masks of every object annotated on that frame (objects in id order)."""
    out: dict[str, list[Path]] = {}
    if not video_annotations.is_dir():
        return out
    for obj in sorted(p for p in video_annotations.iterdir() if p.is_dir()):
        for png in sorted(obj.glob("*.png")):
            out.setdefault(png.stem, []).append(png)
    return out


def _spaced(items: list[SavFrame], n: int | None) -> list[SavFrame]:
    if not n or len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def sav_samples(root: str | Path, frames_per_video: int | None = None) -> list[SavFrame]:
    """Frames of every video under an SA-V root (videos and frames sorted), with their masks.

    Videos with annotations contribute their annotated frames only; ``frames_per_video`` keeps that many,
    evenly spaced. Raises :class:`DataError` naming the expected layout when nothing is found.
    """
    layout = sav_layout(root)
    expected = "JPEGImages_24fps/<video>/<frame>.jpg (+ Annotations_6fps/<video>/<obj>/<frame>.png)"
    if layout is None:
        raise DataError(f"{root} is not an SA-V root: expected {expected}")
    frames_dir, ann_dir = layout
    out: list[SavFrame] = []
    n_masks = 0
    for video in sorted(p for p in frames_dir.iterdir() if p.is_dir()):
        masks = _masks_by_frame(ann_dir / video.name)
        frames = _frames(video)
        if masks:
            items = [SavFrame(f, tuple(masks[f.stem])) for f in frames if f.stem in masks]
        else:
            items = [SavFrame(f) for f in frames]
        items = _spaced(items, frames_per_video)
        n_masks += sum(len(i.masks) for i in items)
        out.extend(items)
    if not out:
        raise DataError(f"{frames_dir} holds no frames; expected {expected}")
    log.info("SA-V %s: %d frame(s), %d object mask(s)", root, len(out), n_masks)
    return out


def read_mask(path: Path) -> np.ndarray:
    """A binary object mask (``H x W`` bool) from an SA-V annotation PNG (non-zero pixels: the object)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L")) > 0
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read annotation mask {path}: {exc}. Fix: replace or remove the file."
        ) from exc
