"""A few-hundred-parameter stand-in for SAM 2 with the same output keys, for fast CDPQ tests."""

from __future__ import annotations

import torch
from torch import nn

from sam2_quant_plugin.cdpq.config import CDPQConfig
from sam2_quant_plugin.sam2.batches import PromptBatch


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
        )
        self.mask_head = nn.Conv2d(8, 1, 1)
        self.iou_head = nn.Linear(8, 1)


def toy_task(model: nn.Module, batch: PromptBatch) -> dict[str, torch.Tensor]:
    f = model.body(batch.images)
    return {
        "image_embed": f,
        "low_res_masks": model.mask_head(f) * 4,
        "iou_predictions": model.iou_head(f.mean((2, 3))),
    }


def toy_model(seed: int = 0) -> ToyNet:
    torch.manual_seed(seed)
    return ToyNet().eval()


def toy_batches(n: int = 2, seed: int = 0) -> list[PromptBatch]:
    g = torch.Generator().manual_seed(seed)
    return [
        PromptBatch(torch.randn(1, 3, 16, 16, generator=g), torch.zeros(1, 1, 2), torch.ones(1, 1))
        for _ in range(n)
    ]


def toy_config(**kw: object) -> CDPQConfig:
    base = {
        "name": "toy",
        "target_roots": ("body",),
        "rounds": 1,
        "epochs_per_round": 1,
        "impact_threshold": 0.05,
        "lr": 1e-4,
    }
    return CDPQConfig(**{**base, **kw})


def toy_session_kw(seed: int = 0) -> dict[str, object]:
    teacher = toy_model(seed)
    return {
        "task": toy_task,
        "teacher": teacher,
        "student_float": teacher,
        "batches": (toy_batches(2, seed), toy_batches(1, seed + 1)),
    }
