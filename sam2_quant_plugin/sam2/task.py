"""The SAM 2 CDPQ task: encoder features plus the decoded masks of every prompt of a batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .batches import PromptBatch
from .forward import decode, encode
from .memory_batches import MemoryBatch, memory_task


def sam2_task(model: nn.Module, batch: PromptBatch | MemoryBatch) -> dict[str, Any]:
    """Encoder features plus mask logits / IoU predictions of every point and box prompt of every image;
    for a recorded memory-path call (:class:`MemoryBatch`), that module's output (``output:<module>``).

    Keys: ``image_embed``, ``high_res_feats`` (stage-level), ``low_res_masks [N, 1, s, s]`` and
    ``iou_predictions [N, 1]`` with the prompts of all images concatenated.
    """
    if isinstance(batch, MemoryBatch):
        return memory_task(model, batch)
    feats = encode(model, batch.images)
    masks: list[Tensor] = []
    ious: list[Tensor] = []
    for i in range(len(batch)):
        one = {"image_embed": feats["image_embed"][i : i + 1]}
        one["high_res_feats"] = [f[i : i + 1] for f in feats["high_res_feats"]]
        prompts = [{"points": batch.points[i][:, None, :], "labels": batch.labels[i][:, None]}]
        if batch.boxes is not None:
            prompts.append({"boxes": batch.boxes[i]})
        for kw in prompts:
            out = decode(model, one, **kw)
            masks.append(out["low_res_masks"])
            ious.append(out["iou_predictions"])
    return {
        "image_embed": feats["image_embed"],
        "high_res_feats": list(feats["high_res_feats"]),
        "low_res_masks": torch.cat(masks),
        "iou_predictions": torch.cat(ious),
    }
