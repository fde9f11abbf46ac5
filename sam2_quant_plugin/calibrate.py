"""``calibrate``: run data through a prepared model so every observer sees it (any model)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .api import fake_quants, quant_state, set_observers
from .device import model_device, resolve_device
from .errors import CalibrationError, ConfigError
from .fake_quant.learnable import LearnableBitFakeQuantize
from .gptq import apply_gptq, collect_hessians
from .models.registry import adapter_for
from .observers.base import RangeObserver

log = logging.getLogger(__name__)


def batch_forward_loop(
    data: Iterable[Any], transform: Callable[[Any], Any] | None = None
) -> Callable[[nn.Module], None]:
    """A forward loop over any data: ``model(transform(item))`` for each item (NNCF's ``Dataset`` idea).

    ``transform`` turns one item into the model's input (default: the item itself; a tuple or list item is
    passed as positional arguments). ``data`` must be re-iterable (a list, a DataLoader) if the loop is
    run more than once.
    """
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise ConfigError(
            f"calibration data must be an iterable of batches (a list, a DataLoader), got "
            f"{type(data).__name__}. Fix: pass e.g. [x1, x2], or a callable forward_loop(model)"
        )
    if transform is not None and not callable(transform):
        raise ConfigError(f"transform must be callable, got {type(transform).__name__}. Fix: pass a function")

    def loop(model: nn.Module) -> None:
        device = model_device(model)  # inputs follow the model's device
        for item in data:
            x = transform(item) if transform is not None else item
            args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
            model(*(a.to(device) if isinstance(a, torch.Tensor) else a for a in args))

    return loop


def calibrate(
    model: nn.Module,
    images: Any = None,
    *,
    forward_loop: Callable[[nn.Module], None] | None = None,
    image_size: int | None = None,
    batch_size: int = 1,
    points_per_side: int = 4,
    progress: bool = True,
    device: str | torch.device | None = None,
    video: str | Path | None = None,
) -> nn.Module:
    """Collect ranges: observers on, run ``forward_loop``, observers off.

    Without ``forward_loop`` the model family's adapter supplies one (SAM 2: ``images`` through the
    encoder, a ``points_per_side``^2 point grid through the decoder; ``images`` is a folder, a list of
    paths or arrays, a ``[B, 3, S, S]`` tensor, or None for the bundled photos); any other model needs
    a ``forward_loop`` (:func:`batch_forward_loop`). ``video`` (a folder of JPEG frames) asks the adapter
    to add its video path over that clip (SAM 2: prompts on frame 0 propagated, so memory attention and the
    memory encoder see memories, and the encoder sees the frames too); SAM 2 adds the bundled clip by
    itself when the recipe quantizes memory layers.
    Afterwards every quantizer has a scale; learnable scales start from it. Layers whose
    weight spec says ``rounding: gptq`` are then GPTQ-rounded from the inputs the loop fed them. Raises
    :class:`CalibrationError` naming quantizers that saw no data (give a ``forward_loop`` that runs
    those modules, e.g. the video path for memory attention).
    """
    state = quant_state(model)
    if device is not None:  # 'cpu' | 'cuda' | 'auto'; None: where the model is. Inputs follow the model.
        model.to(resolve_device(device))
    if forward_loop is not None and not callable(forward_loop):
        raise ConfigError(
            f"forward_loop must be a callable loop(model), got {type(forward_loop).__name__}. Fix: wrap "
            "batches with batch_forward_loop(data), or pass them to quantize(model, recipe, data)"
        )
    if forward_loop is not None and video is not None:
        raise CalibrationError(
            "calibrate() got both forward_loop and video; the video clip is only used by the adapter's own "
            "loop. Fix: pass one (run your clip inside forward_loop, e.g. sam2.video.video_forward_loop(dir))"
        )
    extra = {"video": Path(video)} if video is not None else {}
    loop = forward_loop or adapter_for(model).forward_loop(
        images,
        plans=tuple(state.plans),
        image_size=image_size,
        batch_size=batch_size,
        points_per_side=points_per_side,
        progress=progress,
        **extra,
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
