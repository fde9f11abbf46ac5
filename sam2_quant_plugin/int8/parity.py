"""What an AVX2-class CPU (no VNNI) would get from a frozen model's fused int8 layers, on any host.

When no weight pair can saturate (the check reads the weight codes), the AVX2 kernels compute the same
integers as every other x86 int8 path, which is a proof, not a sample. Otherwise the model is run with
its risky layers through the exact kernel model (:func:`.emulate.emulated`) and scored against the
fake-quant model on the given photos.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from torch import nn

from ..models.registry import adapter_for
from .emulate import emulated
from .safety import int8_layers, saturation_report

log = logging.getLogger(__name__)


def avx2_parity(
    frozen: nn.Module, images: Sequence[np.ndarray], *, image_size: int, points_per_side: int = 4
) -> dict[str, object]:
    """Parity of the AVX2 u8 x s8 kernels against exact int8 kernels (VNNI), i.e. the fake-quant model.

    Returns ``method`` ('proof': no weight pair can saturate, so AVX2 computes the same integers as every
    exact path: IoU and cosine 1 by construction; or 'emulated': ``mask_iou`` / ``embed_cosine`` of the
    emulated kernels vs the fake-quant model on ``images``), plus the saturation summary.
    """
    report = saturation_report(frozen)
    out: dict[str, object] = {"path": "avx2", "saturation": report.summary()}
    if report.safe:
        return {**out, "method": "proof", "mask_iou": 1.0, "embed_cosine": 1.0}
    linears = set(int8_layers(frozen))
    skipped = [n for n in report.risky_layers if n not in linears]
    if skipped:  # QLinearConv's input order depends on its layout: flagged by the verdict, not emulated
        log.warning("AVX2 emulation covers Linear layers only; not emulated: %s", ", ".join(skipped))
    log.info("emulating the AVX2 int8 kernels on %d risky layers", len(report.risky_layers) - len(skipped))
    fid = adapter_for(frozen).fidelity(
        frozen, emulated(frozen, "avx2"), images, image_size=image_size, points_per_side=points_per_side
    )
    return {**out, "method": "emulated", "not_emulated": skipped, **fid}
