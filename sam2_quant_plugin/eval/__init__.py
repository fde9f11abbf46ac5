"""Fidelity evaluation against the float teacher: metrics, the image and video harness, baselines, the table.

Submodules import lazily (onnxruntime and NNCF are heavy): ``from sam2_quant_plugin.eval import run_eval``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cosine": "metrics",
    "mask_iou": "metrics",
    "IoUResult": "metrics",
    "build_reference": "harness",
    "score_student": "harness",
    "evaluate_images": "harness",
    "build_video_reference": "video",
    "score_video": "video",
    "evaluate_video": "video",
    "make_video_predictor": "video",
    "run_eval": "pipeline",
    "make_methods": "baselines.registry",
    "METHODS": "baselines.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
