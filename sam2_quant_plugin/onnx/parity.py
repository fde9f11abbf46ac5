"""Parity verdicts: thresholds a parity result must meet, and the checks that name what failed.

The results come from a model family's adapter (SAM 2: :func:`sam2_quant_plugin.sam2.parity.pipeline_parity`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..errors import ParityError

log = logging.getLogger(__name__)

#: Default pass thresholds: ORT vs the PyTorch model it was exported from (a result is checked on the keys it
#: has: ``video_j`` is the per-frame mask IoU of a video loop whose memory graphs run on onnxruntime).
THRESHOLDS = {"mask_iou": 0.99, "embed_cosine": 0.999, "video_j": 0.98}


def fmt_result(r: dict[str, float | int | str]) -> str:
    return ", ".join(f"{k}={v:.5f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def check_parity(result: dict[str, float | int | str], thresholds: dict[str, float] | None = None) -> None:
    """Raise :class:`ParityError` with the numbers when a metric is below its threshold (NaN fails)."""
    thresholds = THRESHOLDS if thresholds is None else thresholds
    failed = []
    for key, lo in thresholds.items():
        v = result.get(key)
        if v is None:
            continue
        if not float(v) >= lo:
            failed.append(f"{key}={float(v):.5f} < {lo}")
    if failed:
        raise ParityError("onnxruntime parity failed: " + "; ".join(failed) + f" (all: {fmt_result(result)})")


def failed_checks(
    results: Mapping[str, dict[str, float | int | str]], thresholds: dict[str, float] | None = None
) -> list[str]:
    """``'<name>: <why>'`` for every named parity result that fails :func:`check_parity`."""
    out = []
    for name, result in results.items():
        try:
            check_parity(result, thresholds)
        except ParityError as e:
            out.append(f"{name}: {e}")
    return out
