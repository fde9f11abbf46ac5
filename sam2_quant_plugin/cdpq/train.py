"""KD training epochs (student weights + learnable scales) and validation against a cached teacher."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import model_device
from .config import LossWeights
from .data import Batch
from .features import Captured, FeatureCapture
from .losses import distill_loss
from .task import Outputs, Task

log = logging.getLogger(__name__)


def _detach(out: Outputs) -> Outputs:
    """Detached float32 copies (a teacher run under bf16/fp16 autocast gives half-precision outputs)."""

    def one(t: torch.Tensor) -> torch.Tensor:
        return t.detach().float() if t.is_floating_point() else t.detach()

    return {k: [one(t) for t in v] if isinstance(v, list) else one(v) for k, v in out.items()}


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TeacherCache:
    """Teacher outputs and layer captures per batch; the teacher is frozen, so each batch runs once."""

    teacher: nn.Module
    task: Task
    layers: Sequence[str]
    #: "bf16" / "fp16": the frozen teacher runs under CUDA autocast (its outputs are stored as float32);
    #: ignored off CUDA. The student always trains in float32 (fake-quant rounding needs it).
    autocast: str | None = None
    _cache: dict[int, tuple[Outputs, dict[str, Captured]]] = field(default_factory=dict)

    @torch.no_grad()
    def get(self, key: int, batch: Batch) -> tuple[Outputs, dict[str, Captured]]:
        if key not in self._cache:
            on_cuda = model_device(self.teacher).type == "cuda"
            dtype = AUTOCAST.get(self.autocast or "", torch.float32)
            with (
                torch.autocast("cuda", dtype=dtype, enabled=on_cuda and self.autocast is not None),
                FeatureCapture(self.teacher, self.layers, detach=True) as cap,
            ):
                out = self.task(self.teacher, batch)
            self._cache[key] = (_detach(out), cap.outputs)
        return self._cache[key]


def output_weights(w: LossWeights) -> LossWeights:
    """Stage/output terms only (what validation and differently-sized teachers use)."""
    return replace(w, stats=0.0, feature=0.0, affinity=0.0)


def kd_epoch(
    runner: nn.Module,
    student: nn.Module,
    teacher: TeacherCache,
    batches: Sequence[Batch],
    optimizer: torch.optim.Optimizer,
    weights: LossWeights,
    *,
    history: dict[str, list[float]] | None = None,
    grad_clip: float = 0.0,
    extra_loss: Callable[[], torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "kd",
    key_offset: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``batches``; ``runner`` is the student or its DDP wrapper (``forward(batch)``).

    Per-layer losses are appended to ``history`` (one mean per epoch). ``extra_loss`` is added to the
    KD loss (the bit penalty of the differentiable mode); ``after_step`` runs after each optimizer step.
    """
    student.eval()  # KD of a fixed architecture: no dropout noise; fake-quant still takes the STE path
    sums: dict[str, float] = defaultdict(float)
    layer_sums: dict[str, float] = defaultdict(float)
    bar = tqdm(list(enumerate(batches)), desc=desc, disable=not progress, leave=False)
    for i, batch in bar:
        t_out, t_layers = teacher.get(key_offset + i, batch)
        with FeatureCapture(student, teacher.layers) as cap:
            s_out = runner(batch)
        loss, parts, per_layer = distill_loss(t_out, s_out, t_layers, cap.outputs, weights)
        if extra_loss is not None:
            penalty = extra_loss()
            loss = loss + penalty
            parts["bit_penalty"] = float(penalty.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step()
        sums["loss"] += float(loss.detach())
        for k, v in parts.items():
            sums[k] += v
        for k, v in per_layer.items():
            layer_sums[k] += v
        bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
    n = max(len(batches), 1)
    if history is not None:
        for k, v in layer_sums.items():
            history.setdefault(k, []).append(v / n)
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def evaluate(
    student: nn.Module,
    teacher: TeacherCache,
    task: Task,
    batches: Sequence[Batch],
    weights: LossWeights,
    *,
    key_offset: int = 10_000,
    layers: bool = False,
) -> tuple[float, dict[str, float]]:
    """Mean validation loss (stage/output terms only) and, with ``layers``, per-layer losses."""
    student.eval()
    total, per_layer_sum = 0.0, defaultdict(float)
    names = teacher.layers if layers else []
    for i, batch in enumerate(batches):
        t_out, t_layers = teacher.get(key_offset + i, batch)
        with FeatureCapture(student, names, detach=True) as cap:
            s_out = task(student, batch)
        loss, _, _ = distill_loss(t_out, s_out, {}, {}, output_weights(weights))
        total += float(loss)
        if layers:
            _, _, per_layer = distill_loss(t_out, s_out, t_layers, cap.outputs, weights)
            for k, v in per_layer.items():
                per_layer_sum[k] += v
    n = max(len(batches), 1)
    return total / n, {k: v / n for k, v in per_layer_sum.items()}


def make_optimizer(student: nn.Module, lr: float, scale_lr: float, bit_lr: float = 0.0) -> torch.optim.Adam:
    """Adam with three groups: weights, fake-quant step sizes, bit offsets (only those that train)."""
    groups: dict[str, list[nn.Parameter]] = {"weights": [], "scales": [], "bits": []}
    for name, p in student.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bit_offset"):
            groups["bits"].append(p)
        elif name.endswith("fake_quant.scale"):
            groups["scales"].append(p)
        else:
            groups["weights"].append(p)
    lrs = {"weights": lr, "scales": scale_lr, "bits": bit_lr}
    param_groups = [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]
    return torch.optim.Adam(param_groups)
