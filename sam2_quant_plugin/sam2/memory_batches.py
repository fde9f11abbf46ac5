"""CDPQ data for SAM 2's memory path: what memory attention and the memory encoder are fed on a real clip.

Those modules only run inside SAM 2's video code (``propagate_in_video`` runs under inference mode, so no
gradient can flow through it). The float teacher therefore propagates point prompts over a clip once, and
every call into ``memory_attention`` / ``memory_encoder`` is recorded with its inputs. A
:class:`MemoryBatch` replays one call, so the search and the KD rounds distil each memory module's output
against the teacher's on the very inputs the teacher saw, with gradients (module-level distillation on
recorded inputs, as block-reconstruction PTQ does).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .video import (
    VIDEO_ROOTS,
    first_frame_points,
    first_frames,
    propagate,
    sharing_video_predictor,
)

log = logging.getLogger(__name__)
#: the recorded modules (the other video roots, object-pointer and mask-downsample layers, are not replayed)
REPLAYED = ("memory_attention", "memory_encoder")


@dataclass
class MemoryBatch:
    """One recorded call: ``module`` (``memory_attention`` or ``memory_encoder``) and its arguments."""

    module: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return 1

    def to(self, device: torch.device | str) -> MemoryBatch:
        return MemoryBatch(self.module, _move(self.args, device), _move(self.kwargs, device))


def _move(x: Any, device: torch.device | str | None) -> Any:
    """Tensors in ``x`` (nested lists, tuples, dicts) as normal tensors on ``device`` (None: where they are).

    Cloning outside inference mode turns the inference tensors recorded inside ``propagate_in_video`` into
    ones autograd can save for backward.
    """
    if isinstance(x, Tensor):
        return x.detach().to(device).clone() if device is not None else x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_move(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _move(v, device) for k, v in x.items()}
    return x


def unreplayed_roots(target_roots: Sequence[str]) -> list[str]:
    """Targets under the video roots that no recorded call replays (object-pointer, mask-downsample)."""
    return [r for r in target_roots if r.startswith(VIDEO_ROOTS) and not r.startswith(REPLAYED)]


def record_memory_batches(
    teacher: nn.Module, video_dir: str | Path, *, n_per_side: int = 2, max_frames: int | None = None
) -> list[MemoryBatch]:
    """Every memory-attention and memory-encoder call of ``teacher`` propagating ``n_per_side``^2 point
    prompts (frame 0) over ``video_dir`` (first ``max_frames`` frames), in call order, on the CPU."""
    calls: list[MemoryBatch] = []
    hooks = [
        teacher.get_submodule(name).register_forward_pre_hook(
            lambda _m, args, kwargs, name=name: calls.append(MemoryBatch(name, args, kwargs)),
            with_kwargs=True,
        )
        for name in REPLAYED
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="sam2_quant_clip_") as tmp:
            folder = first_frames(video_dir, max_frames, Path(tmp))  # checks the folder, before model work
            points, _ = first_frame_points(folder, n_per_side)
            propagate(sharing_video_predictor(teacher), folder, points)
    finally:
        for h in hooks:
            h.remove()
    batches = [MemoryBatch(c.module, _move(c.args, "cpu"), _move(c.kwargs, "cpu")) for c in calls]
    counts = {m: sum(b.module == m for b in batches) for m in REPLAYED}
    log.info("memory path: recorded %s calls over %s (%d objects)", counts, video_dir, len(points))
    return batches


def memory_task(model: nn.Module, batch: MemoryBatch) -> dict[str, Tensor]:
    """Replay one recorded call on ``model``'s module: ``{"output:<module>": tensor}`` (for the memory
    encoder its features; its position encoding has no weights)."""
    from ..device import model_device

    b = batch.to(model_device(model))
    out = model.get_submodule(b.module)(*b.args, **b.kwargs)
    if isinstance(out, dict):  # the memory encoder: vision_features + vision_pos_enc (a list)
        return {f"output:{b.module}": out["vision_features"]}
    return {f"output:{b.module}": out}
