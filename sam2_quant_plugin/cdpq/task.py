"""How a model is run on a batch: SAM 2 encode + decode of every prompt (or any callable for tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..sam2.forward import decode, encode
from .data import PromptBatch

Outputs = dict[str, Any]
Task = Callable[[nn.Module, PromptBatch], Outputs]


def sam2_task(model: nn.Module, batch: PromptBatch) -> Outputs:
    """Encoder features plus mask logits / IoU predictions of every point and box prompt of every image.

    Keys: ``image_embed``, ``high_res_feats`` (stage-level), ``low_res_masks [N, 1, s, s]`` and
    ``iou_predictions [N, 1]`` with the prompts of all images concatenated.
    """
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


class TaskModule(nn.Module):
    """Wraps ``student`` so that ``forward(batch)`` runs the task: what DDP needs to see a forward."""

    def __init__(self, student: nn.Module, task: Task) -> None:
        super().__init__()
        self.student = student
        self.task = task

    def forward(self, batch: PromptBatch) -> Outputs:
        return self.task(self.student, batch)
