"""SAM 2's default calibration loop: photos through the image encoder, a point grid through the decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..io.images import bundled_images, list_images, load_image
from .export import DECODER_ROOTS
from .forward import decode, encode, model_image_size, point_grid
from .preprocess import to_model_input

ImageSource = str | Path | Sequence[str | Path] | Sequence[np.ndarray] | torch.Tensor | None


def _batches(images: ImageSource, image_size: int, batch_size: int) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        return list(images.split(batch_size))
    if images is None:
        images = bundled_images()
    if isinstance(images, (str, Path)):
        images = list_images(images)
    arrays = [im if isinstance(im, np.ndarray) else load_image(im) for im in images]
    return [to_model_input(arrays[i : i + batch_size], image_size) for i in range(0, len(arrays), batch_size)]


def default_forward_loop(
    images: ImageSource = None,
    *,
    image_size: int | None = None,
    batch_size: int = 1,
    points_per_side: int = 4,
    decode_prompts: bool = True,
    progress: bool = True,
) -> Callable[[nn.Module], None]:
    """A forward loop over photos: encoder on every image, and a point grid through the decoder
    (``decode_prompts=False``: encoder only)."""

    def loop(model: nn.Module) -> None:
        size = image_size or model_image_size(model)
        batches = _batches(images, size, batch_size)
        grid = point_grid(points_per_side, size)
        for x in tqdm(batches, desc="calibrate", disable=not progress, leave=False):
            feats = encode(model, x)
            if not decode_prompts:
                continue
            for i in range(x.shape[0]):
                one = {"image_embed": feats["image_embed"][i : i + 1]}
                one["high_res_feats"] = [f[i : i + 1] for f in feats["high_res_feats"]]
                decode(model, one, points=grid[:, None, :], labels=torch.ones(len(grid), 1))

    return loop


def needs_decoder(plans: Sequence[str]) -> bool:
    """Whether a quantized layer sits in the prompt encoder / mask decoder (then the loop decodes prompts)."""
    return any(n.startswith(DECODER_ROOTS) for n in plans)
