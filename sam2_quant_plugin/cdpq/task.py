"""How a model is run on a batch: the model family's task (``adapter.task()``) or any callable.

SAM 2's is :func:`sam2_quant_plugin.sam2.task.sam2_task`; any other model's the generic
:func:`sam2_quant_plugin.models.output_task` (``{"output": model(batch)}``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.adapter import Task

Outputs = dict[str, Any]


class TaskModule(nn.Module):
    """Wraps ``student`` so that ``forward(batch)`` runs the task: what DDP needs to see a forward."""

    def __init__(self, student: nn.Module, task: Task) -> None:
        super().__init__()
        self.student = student
        self.task = task

    def forward(self, batch: Any) -> Outputs:
        return self.task(self.student, batch)


__all__ = ["Outputs", "Task", "TaskModule"]
