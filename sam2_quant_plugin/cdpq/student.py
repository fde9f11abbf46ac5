"""The quantized student: a learnable-bit recipe over ``target_roots``, calibration, bit ladders, refits
of the step size after a bit drop, and size accounting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from ..api import WEIGHT_FQ, prepare_qat, weight_bits_summary
from ..calibrate import calibrate
from ..fake_quant.learnable import LearnableBitFakeQuantize
from ..numerics import mse_clip_search, qparams_from_minmax, qrange
from ..recipe.schema import LayerRule, Recipe, weight_spec
from .data import Batch
from .task import Task

log = logging.getLogger(__name__)


def student_recipe(
    target_roots: Sequence[str],
    init_bits: int = 8,
    observer: str = "minmax",
    group_size: int | None = None,
    has_convs: bool = True,
) -> Recipe:
    """Weight-only, learnable in [2, 8] so that ``set_bits`` can move any layer anywhere.

    Per-channel scales, or with ``group_size`` per-group scales on every Linear (convolutions, e.g. the
    7x7 patch embedding with 147 inputs per channel, keep per-channel scales through a ``type:Conv2d``
    rule; ``has_convs=False`` leaves that rule out for models without convolutions).
    """
    base = {"bits": init_bits, "learnable": True, "min_bits": 2, "max_bits": 8, "observer": observer}
    spec = weight_spec(**base)
    rules: tuple[LayerRule, ...] = ()
    if group_size:
        rules = (LayerRule(match="type:Conv2d", weight=spec),) if has_convs else ()
        spec = weight_spec(**base, granularity="per_group", group_size=group_size)
    return Recipe(
        name="cdpq-student",
        description="CDPQ student: weight-only learnable bits in [2, 8]"
        + (f", {group_size}-wide weight groups on Linears" if group_size else ""),
        targets=tuple(target_roots),
        default=LayerRule(match="<default>", weight=spec, activation=None),
        rules=rules,
    )


def weight_quantizers(model: nn.Module) -> dict[str, LearnableBitFakeQuantize]:
    """Layer name -> its weight fake-quant."""
    return {
        n.removesuffix(f".{WEIGHT_FQ}"): m
        for n, m in model.named_modules()
        if n.endswith(WEIGHT_FQ) and isinstance(m, LearnableBitFakeQuantize)
    }


def prepare_student(
    float_model: nn.Module,
    batches: Sequence[Batch],
    task: Task,
    *,
    target_roots: Sequence[str],
    init_bits: int = 8,
    observer: str = "minmax",
    learn_bits: bool = False,
    group_size: int | None = None,
) -> nn.Module:
    """Deep-copied, prepared and calibrated student; only ``target_roots`` parameters train.

    ``learn_bits=False`` (search mode) freezes every bit offset: bits then move only by ``set_bits``.
    """
    roots = tuple(target_roots)
    has_convs = any(isinstance(m, nn.Conv2d) and n.startswith(roots) for n, m in float_model.named_modules())
    recipe = student_recipe(roots, init_bits, observer, group_size, has_convs)
    student = prepare_qat(float_model, recipe)

    def loop(m: nn.Module) -> None:
        for b in batches:
            task(m, b)

    calibrate(student, forward_loop=loop, progress=False)
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith(tuple(target_roots)))
    for fq in weight_quantizers(student).values():
        fq.bit_offset.requires_grad_(learn_bits)
    return student


def next_rung(bits: int, ladder: Sequence[int]) -> int | None:
    """The next lower width on the ladder below ``bits`` (None at the bottom)."""
    lower = [b for b in ladder if b < bits]
    return max(lower) if lower else None


#: clip ratios the MSE refit tries after a bit drop (the written recipe's ``mse`` observer uses the same)
REFIT_GRID = 16


@torch.no_grad()
def refit_scale(layer: nn.Module, fq: LearnableBitFakeQuantize, grid: int = REFIT_GRID) -> None:
    """Per-channel MSE-optimal clipping for the layer's current width (min-max ranges waste low bits)."""
    qmin, qmax = qrange(fq.bits, fq.signed, fq.narrow_range)
    axis = fq.ch_axis if fq.per_channel else None
    lo, hi = mse_clip_search(fq.quant_view(layer.weight), qmin, qmax, axis, symmetric=fq.symmetric, grid=grid)
    scale, zp = qparams_from_minmax(lo, hi, qmin, qmax, fq.symmetric)
    fq.scale.data = scale.reshape(fq.scale.shape) if scale.numel() == fq.scale.numel() else scale
    fq.zero_point.data = (
        zp.float().reshape(fq.zero_point.shape) if zp.numel() == fq.zero_point.numel() else zp
    )
    fq.scale_initialized.fill_(1)


def set_layer_bits(model: nn.Module, layer: str, bits: int, *, refit: bool = True) -> None:
    fq = weight_quantizers(model)[layer]
    fq.set_bits(bits)
    if refit:
        refit_scale(model.get_submodule(layer), fq)


def bits_map(model: nn.Module) -> dict[str, int]:
    return {n: fq.bits for n, fq in weight_quantizers(model).items()}


def size_report(model: nn.Module, roots: Sequence[str] = ("image_encoder",)) -> dict[str, float]:
    """Average weight bits and bytes: packed quantized weights, their fp32 scales, and the float rest
    (biases, norms, position embeddings) of every parameter under ``roots``.
    """
    summary = weight_bits_summary(model)
    onnx = weight_bits_summary(model, storage="onnx")
    fqs = weight_quantizers(model)
    scale_bytes = sum(4.0 * fq.scale.numel() for fq in fqs.values())
    quantized = {f"{n}.weight" for n in fqs}
    float_bytes = sum(
        4.0 * p.numel()
        for n, p in model.named_parameters()
        if n.startswith(tuple(roots)) and n not in quantized and "fake_quant" not in n
    )
    total = summary["weight_bytes"] + scale_bytes + float_bytes
    return {
        "avg_weight_bits": summary["avg_weight_bits"],
        "weight_bytes": summary["weight_bytes"],
        "scale_bytes": scale_bytes,
        "float_bytes": float_bytes,
        "total_mb": total / 1e6,
        "onnx_weight_bytes": onnx["weight_bytes"],  # as the int4 export stores them (<= 4 bits: INT4)
        "onnx_total_mb": (total - summary["weight_bytes"] + onnx["weight_bytes"]) / 1e6,
    }
