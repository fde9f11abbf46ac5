"""Quick fidelity of a quantized SAM 2 against its float teacher (``sam2-quant run``, CDPQ benchmark).

Point-prompt mask IoU (degenerate teacher masks excluded) and embedding cosine, as one flat dict: the
point-prompt part of :func:`sam2_quant_plugin.eval.harness.score_student`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from .eval.harness import build_reference, score_student


def image_fidelity(
    teacher: nn.Module,
    student: nn.Module,
    images: Sequence[np.ndarray],
    *,
    image_size: int,
    points_per_side: int = 8,
) -> dict[str, float]:
    """Mean mask IoU (point grid) and mean embedding cosine of ``student`` vs ``teacher`` over ``images``."""
    ref = build_reference(
        teacher, images, image_size=image_size, points_per_side=points_per_side, progress=False
    )
    score = score_student(ref, student, teacher, progress=False)
    return {"embed_cosine": score["embed_cosine"], **score["points"]}
