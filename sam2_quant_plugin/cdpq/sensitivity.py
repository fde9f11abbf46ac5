"""Per-layer sensitivity of the distillation loss to each quantized weight: gradient norm, Fisher
(mean squared gradient) and Hutchinson's Hessian-trace estimate; cached as JSON.

Measured on the student with its fake quantization on, so the loss (and its gradient) is non-zero.
Values are per parameter (divided by the weight's size), comparable across layers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..io.atomic import atomic_write_json
from .data import Batch
from .losses import distill_loss
from .student import weight_quantizers
from .task import Task
from .train import TeacherCache, output_weights

log = logging.getLogger(__name__)
METRICS = ("grad_norm", "fisher", "hutchinson")


def _loss(student: nn.Module, cache: TeacherCache, task: Task, key: int, batch: Batch, weights):  # type: ignore[no-untyped-def]
    t_out, _ = cache.get(key, batch)
    total, _, _ = distill_loss(t_out, task(student, batch), {}, {}, output_weights(weights))
    return total


def compute_sensitivity(
    student: nn.Module,
    cache: TeacherCache,
    task: Task,
    batches: Sequence[Batch],
    weights,  # type: ignore[no-untyped-def]
    metric: str = "fisher",
    *,
    layers: Sequence[str] | None = None,
    probes: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Layer name -> sensitivity (``metric`` in grad_norm | fisher | hutchinson)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown sensitivity metric {metric!r}. Fix: use one of {METRICS}")
    names = list(layers or weight_quantizers(student))
    params = [student.get_submodule(n).weight for n in names]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    was_training = student.training
    student.eval()
    acc = torch.zeros(len(names), dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    try:
        for i, batch in enumerate(
            tqdm(batches, desc=f"sensitivity {metric}", disable=not progress, leave=False)
        ):
            if metric == "hutchinson":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel(SDPBackend.MATH):  # the fused kernels have no double backward
                    loss = _loss(student, cache, task, 20_000 + i, batch, weights)
                    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
                    for _ in range(probes):
                        vs = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1 for p in params]
                        dot = sum((g * v).sum() for g, v in zip(grads, vs) if g is not None)
                        hvs = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
                        for j, (hv, v) in enumerate(zip(hvs, vs)):
                            if hv is not None:
                                acc[j] += float((hv * v).sum()) / probes
            else:
                loss = _loss(student, cache, task, 20_000 + i, batch, weights)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for j, g in enumerate(grads):
                    if g is not None:
                        acc[j] += float(g.norm()) if metric == "grad_norm" else float(g.pow(2).sum())
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        student.train(was_training)
    n = max(len(batches), 1)
    return {name: float(acc[j]) / n / params[j].numel() for j, name in enumerate(names)}


def cached_sensitivity(path: Path, metric: str, compute) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Read ``path`` when it holds ``metric``; else call ``compute()`` and write it."""
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("metric") == metric:
            log.info("sensitivity (%s) read from %s", metric, path)
            return {k: float(v) for k, v in data["values"].items()}
    values = compute()
    atomic_write_json(path, {"metric": metric, "values": values}, overwrite=True)
    log.info("sensitivity (%s) of %d layers written to %s", metric, len(values), path)
    return values


def importance_from(sensitivity: dict[str, float], floor: float = 0.05) -> dict[str, float]:
    """Positive importances with mean 1 (sensitive layers pay less per bit); ``floor`` avoids zeros."""
    if not sensitivity:
        return {}
    vals = {k: abs(v) for k, v in sensitivity.items()}
    mean = sum(vals.values()) / len(vals) or 1.0
    return {k: max(v / mean, floor) for k, v in vals.items()}
