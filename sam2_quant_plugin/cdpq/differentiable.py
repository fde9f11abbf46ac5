"""Differentiable bit search: loss = KD + lambda * sum_i b_i * size_i / importance_i with float bit offsets
(the learnable fake-quant), a separate optimizer group for bits, clamping after every step and warnings for
bits that sit at a bound.

With a size budget (``target_avg_bits`` / ``target_bytes``) the bit term acts only while the rounded bits miss
it, and its weight doubles after every step that ends above the budget (dual ascent: KD's pull on the bits is
larger than a fixed small lambda's), so bits fall to the budget and KD then holds each layer where it matters;
without one the term always acts with ``bit_lambda``. The bit learning rate defaults to what lets an offset
cross the whole [min, max] range twice in the run (Adam moves a parameter by about its learning rate per
step): a fixed small rate on a short run (two photos, four epochs: eight steps) moves no bit at all.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch

from ..api import weight_bits_summary
from ..fake_quant.learnable import LearnableBitFakeQuantize
from ..fake_quant.regularizer import bit_penalty
from . import ddp
from .budget import budget_met
from .session import Session
from .student import bits_map, set_layer_bits, weight_quantizers
from .task import TaskModule
from .train import kd_epoch, make_optimizer

log = logging.getLogger(__name__)
STUCK_SHARE = 0.9
#: with a budget, lambda grows by this factor after every step that ends above it
LAMBDA_GROWTH = 2.0


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


def auto_bit_lr(span: float, steps: int) -> float:
    """A bit learning rate that lets an offset travel ``span`` (max - min bits) twice in ``steps`` steps."""
    return 2.0 * span / max(steps, 1)


def run_differentiable(
    s: Session, importance: dict[str, float] | None = None, *, progress: bool = True
) -> dict[str, object]:
    """Train weights, step sizes and bit widths jointly; returns the curve, the stuck layers, the bit
    learning rate used and whether the budget (if any) was met."""
    cfg = s.cfg
    fqs = weight_quantizers(s.student)
    if not any(fq.learnable_bits for fq in fqs.values()):
        raise ValueError(
            "the student has no learnable bit widths; build the session with mode='differentiable'"
        )
    planned = cfg.diff_epochs * len(s.train)
    span = max(float(fq.max_bits - fq.min_bits) for fq in fqs.values())
    bit_lr = cfg.bit_lr if cfg.bit_lr is not None else auto_bit_lr(span, planned)
    log.info(
        "differentiable: bit_lr %.4g (%s), %d planned steps, bit term %s",
        bit_lr,
        "set" if cfg.bit_lr is not None else f"auto: 2 x {span:g} bits / steps",
        planned,
        "until the budget is met" if cfg.has_budget else f"always (lambda {cfg.bit_lambda:g})",
    )
    runner = ddp.wrap(TaskModule(s.student, s.task))
    opt = make_optimizer(s.student, cfg.lr, cfg.scale_lr, bit_lr)
    at_bound: Counter = Counter()
    steps = 0

    lam = cfg.bit_lambda

    def penalty() -> torch.Tensor:
        if cfg.has_budget and budget_met(s):
            return torch.zeros(())
        return lam * bit_penalty(s.student, importance, soft=True)

    def after_step() -> None:
        nonlocal steps, lam
        steps += 1
        clamp_offsets(s.student, at_bound)
        if cfg.has_budget and not budget_met(s):  # dual ascent: the bit term grows until it wins over KD
            lam *= LAMBDA_GROWTH

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
        at_max = sum(side == "max" for side in stuck.values())
        hint = (
            "bits stayed at the top: give a budget (e.g. --target-bits 6, or --target-mb), or raise "
            f"--bit-lambda above {cfg.bit_lambda:g} / --bit-lr above {bit_lr:.3g}"
            if at_max >= len(stuck) / 2
            else f"bits sank to the bottom: lower --bit-lambda below {cfg.bit_lambda:g} or give a budget"
        )
        log.warning(
            "%d layer(s) kept their bits at a bound in >= %d%% of %d steps (e.g. %s); %s",
            len(stuck),
            int(STUCK_SHARE * 100),
            steps,
            ", ".join(f"{k}@{v}" for k, v in list(stuck.items())[:4]),
            hint,
        )
    projected = project_to_budget(s) if cfg.has_budget else []
    met = budget_met(s) if cfg.has_budget else None
    if projected:
        log.warning(
            "the differentiable run ended above the budget; %d layer(s) closest to rounding down were "
            "lowered one bit each to meet it (now %s). More --diff-epochs or a larger --bit-lambda let "
            "training get there itself",
            len(projected),
            _fmt_size(s),
        )
    return {
        "train_curve": curve,
        "stuck": stuck,
        "steps": steps,
        "bit_lr": bit_lr,
        "budget_met": met,
        "final_bit_lambda": lam,
        "projected": projected,
    }


def project_to_budget(s: Session) -> list[str]:
    """Lower layers one bit at a time until the rounded bits meet the budget; returns them in order.

    The next layer is the one whose trained bit value sits closest above its rounding-down point (the
    offset training was already pushing down; ties: the larger layer, which saves more), and its step
    size is refit for the new width, as a search attempt would. Nothing changes when the budget is met.
    """
    lowered: list[str] = []
    fqs = weight_quantizers(s.student)
    while not budget_met(s):
        movable = {n: fq for n, fq in fqs.items() if fq.bits > fq.min_bits}
        if not movable:
            break

        def key(item: tuple[str, LearnableBitFakeQuantize]) -> tuple[float, float]:
            name, fq = item
            value = fq.min_bits + float(fq.bit_offset.detach().max())
            size = float(s.student.get_submodule(name).weight.numel())
            return (value - (fq.bits - 0.5), -size)

        name, fq = min(movable.items(), key=key)
        set_layer_bits(s.student, name, fq.bits - 1, refit=s.cfg.refit_scale)
        lowered.append(name)
    return lowered


def _fmt_size(s: Session) -> str:
    summary = weight_bits_summary(s.student, storage=s.cfg.storage)
    return f"{summary['avg_weight_bits']:.2f} average bits, {summary['weight_bytes'] / 1e6:.2f} MB of weights"
