"""``calibrate``: run real photos through a prepared model so every observer sees data."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .api import fake_quants, quant_state, set_observers
from .errors import CalibrationError
from .fake_quant.learnable import LearnableBitFakeQuantize
from .gptq import apply_gptq, collect_hessians
from .observers.base import RangeObserver
from .sam2.forward import decode, encode, model_image_size, point_grid
from .sam2.preprocess import bundled_images, list_images, load_image, to_model_input

log = logging.getLogger(__name__)
DECODER_ROOTS = ("sam_mask_decoder", "sam_prompt_encoder")

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
    """A forward loop over photos: encoder on every image, and a point grid through the decoder."""

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


def is_sam2(model: nn.Module) -> bool:
    """Whether ``model`` is a SAM 2 model (the default photo loop can drive it)."""
    return hasattr(model, "image_encoder") and hasattr(model, "forward_image")


def batch_forward_loop(
    data: Iterable[Any], transform: Callable[[Any], Any] | None = None
) -> Callable[[nn.Module], None]:
    """A forward loop over any data: ``model(transform(item))`` for each item (NNCF's ``Dataset`` idea).

    ``transform`` turns one item into the model's input (default: the item itself; a tuple or list item is
    passed as positional arguments). ``data`` must be re-iterable (a list, a DataLoader) if the loop is
    run more than once.
    """

    def loop(model: nn.Module) -> None:
        tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
        device = tensor.device if tensor is not None else None  # inputs follow the model's device
        for item in data:
            x = transform(item) if transform is not None else item
            args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
            model(*(a.to(device) if isinstance(a, torch.Tensor) and device else a for a in args))

    return loop


def calibrate(
    model: nn.Module,
    images: ImageSource = None,
    *,
    forward_loop: Callable[[nn.Module], None] | None = None,
    image_size: int | None = None,
    batch_size: int = 1,
    points_per_side: int = 4,
    progress: bool = True,
) -> nn.Module:
    """Collect ranges: observers on, run ``forward_loop`` (default: photos + point prompts), observers off.

    ``images`` is a folder, a list of paths or arrays, a ``[B, 3, S, S]`` tensor, or None for the
    bundled photos. Afterwards every quantizer has a scale; learnable scales start from it. Layers whose
    weight spec says ``rounding: gptq`` are then GPTQ-rounded from the inputs the loop fed them. Raises
    :class:`CalibrationError` naming quantizers that saw no data (give a ``forward_loop`` that runs
    those modules, e.g. the video path for memory attention).
    """
    state = quant_state(model)
    if forward_loop is None and not is_sam2(model):
        raise CalibrationError(
            f"calibrate() without forward_loop feeds photos through SAM 2's encoder and decoder, but this "
            f"model ({type(model).__name__}) is not SAM 2. Fix: pass forward_loop, a callable that runs your "
            "calibration data through the model, e.g. calibrate(model, forward_loop=lambda m: [m(x) for x in "
            "batches]) or forward_loop=batch_forward_loop(batches); sq.quantize(model, recipe, forward_loop) "
            "does prepare + calibrate + freeze in one call"
        )
    needs_decoder = any(n.startswith(DECODER_ROOTS) for n in state.plans)
    loop = forward_loop or default_forward_loop(
        images,
        image_size=image_size,
        batch_size=batch_size,
        points_per_side=points_per_side,
        decode_prompts=needs_decoder,
        progress=progress,
    )
    gptq_layers = [n for n, p in state.plans.items() if p.weight is not None and p.weight.rounding == "gptq"]
    was_training = model.training
    model.eval()
    set_observers(model, True)
    try:
        with torch.no_grad(), collect_hessians(model, gptq_layers) as hessians:
            loop(model)
    finally:
        set_observers(model, False)
        model.train(was_training)
    missing = [n for n, fq in fake_quants(model).items() if not _observed(fq)]
    if missing:
        raise CalibrationError(
            f"{len(missing)} quantizer(s) saw no data during calibration, e.g. {missing[:3]}; pass a "
            "forward_loop that runs those modules (memory attention/encoder need the video path)"
        )
    apply_gptq(model, hessians)
    log.info("calibrated %d quantizers", len(fake_quants(model)))
    return model


def _observed(fq: nn.Module) -> bool:
    if isinstance(fq, LearnableBitFakeQuantize):
        return bool(fq.scale_initialized[0])
    obs = getattr(fq, "activation_post_process", None)
    return not isinstance(obs, RangeObserver) or obs.observed
