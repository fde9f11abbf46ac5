"""Differentiable bit search: loss = KD + lambda * sum_i b_i * size_i / importance_i with float bit
offsets (the learnable fake-quant), a separate optimizer group for bits, clamping after every step and
warnings for bits that sit at a bound.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch

from ..fake_quant.regularizer import bit_penalty
from . import ddp
from .session import Session
from .student import bits_map, weight_quantizers
from .task import TaskModule
from .train import kd_epoch, make_optimizer

log = logging.getLogger(__name__)
STUCK_SHARE = 0.9


def clamp_offsets(student: torch.nn.Module, at_bound: Counter | None = None) -> None:
    """Keep every bit offset in [0, max - min]; count (layer, 'min'/'max') hits in ``at_bound``."""
    with torch.no_grad():
        for name, fq in weight_quantizers(student).items():
            top = float(fq.max_bits - fq.min_bits)
            fq.bit_offset.clamp_(0.0, top)
            if at_bound is not None:
                v = float(fq.bit_offset.max())
                if v <= 0.0:
                    at_bound[(name, "min")] += 1
                elif v >= top:
                    at_bound[(name, "max")] += 1


def stuck_layers(at_bound: Counter, steps: int, share: float = STUCK_SHARE) -> dict[str, str]:
    return {name: side for (name, side), n in at_bound.items() if steps and n / steps >= share}


def run_differentiable(
    s: Session, importance: dict[str, float] | None = None, *, progress: bool = True
) -> dict[str, object]:
    """Train weights, step sizes and bit widths jointly; returns the curve and the stuck layers."""
    cfg = s.cfg
    fqs = weight_quantizers(s.student)
    if not any(fq.learnable_bits for fq in fqs.values()):
        raise ValueError(
            "the student has no learnable bit widths; build the session with mode='differentiable'"
        )
    runner = ddp.wrap(TaskModule(s.student, s.task))
    opt = make_optimizer(s.student, cfg.lr, cfg.scale_lr, cfg.bit_lr)
    at_bound: Counter = Counter()
    steps = 0

    def penalty() -> torch.Tensor:
        return cfg.bit_lambda * bit_penalty(s.student, importance, soft=True)

    def after_step() -> None:
        nonlocal steps
        steps += 1
        clamp_offsets(s.student, at_bound)

    curve: list[float] = []
    for epoch in range(cfg.diff_epochs):
        stats = kd_epoch(
            runner,
            s.student,
            s.cache,
            s.train,
            opt,
            cfg.weights,
            grad_clip=cfg.grad_clip,
            extra_loss=penalty,
            after_step=after_step,
            desc=f"differentiable epoch {epoch + 1}",
            progress=progress,
        )
        curve.append(stats["loss"])
        bits = bits_map(s.student)
        log.info(
            "differentiable epoch %d: %s | bits mean %.2f min %d max %d",
            epoch + 1,
            " ".join(f"{k}={v:.4g}" for k, v in stats.items()),
            sum(bits.values()) / max(len(bits), 1),
            min(bits.values()),
            max(bits.values()),
        )
    stuck = stuck_layers(at_bound, steps)
    if stuck:
        log.warning(
            "%d layer(s) kept their bits at a bound in >= %d%% of %d steps (e.g. %s); consider changing "
            "bit_lambda, bit_lr or the [min, max] range",
            len(stuck),
            int(STUCK_SHARE * 100),
            steps,
            ", ".join(f"{k}@{v}" for k, v in list(stuck.items())[:4]),
        )
    return {"train_curve": curve, "stuck": stuck, "steps": steps}
