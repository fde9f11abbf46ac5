"""The exact SAM 2 input transform (resize, /255, ImageNet normalisation); image files are in
:mod:`sam2_quant_plugin.io.images` (re-exported here)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
from sam2.utils.transforms import SAM2Transforms

from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.io.images import (
    IMAGE_SUFFIXES,
    bundled_images,
    bundled_video_frames,
    list_images,
    load_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "bundled_images",
    "bundled_video_frames",
    "list_images",
    "load_image",
    "to_model_input",
]


@functools.lru_cache(maxsize=8)
def _transforms(image_size: int) -> SAM2Transforms:
    with warnings.catch_warnings():  # SAM2Transforms uses torch.jit.script, deprecated in torch >= 2.10
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        return SAM2Transforms(resolution=image_size, mask_threshold=0.0)


def to_model_input(images: list[np.ndarray], image_size: int) -> torch.Tensor:
    """Stack images into the model input ``[B, 3, S, S]`` float32, exactly as ``SAM2ImagePredictor`` does.

    Each ``HxWx3`` uint8 RGB image is resized to ``SxS`` (bilinear, antialiased), scaled to [0, 1] and
    normalised with the ImageNet mean/std, using ``sam2.utils.transforms.SAM2Transforms`` itself.
    """
    if not images:
        raise DataError("to_model_input got no images. Fix: pass at least one HxWx3 uint8 RGB array.")
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            got = f"{type(img).__name__} {getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}".strip()
            raise DataError(
                f"image {i} must be an HxWx3 uint8 RGB array, got {got}. Fix: load it with load_image()."
            )
    with torch.no_grad():
        return _transforms(int(image_size)).forward_batch(list(images))
