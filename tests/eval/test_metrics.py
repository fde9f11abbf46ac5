"""eval.metrics: IoU with degenerate-mask exclusion, cosine."""

from __future__ import annotations

import math

import pytest
import torch

from sam2_quant_plugin.eval.metrics import cosine, degenerate, mask_iou


def _logits(mask: torch.Tensor) -> torch.Tensor:
    return mask.float() * 2 - 1  # True -> +1 (foreground), False -> -1


def test_identical_masks_score_one() -> None:
    m = torch.zeros(3, 8, 8, dtype=torch.bool)
    m[:, 2:5, 2:6] = True
    res = mask_iou(_logits(m), _logits(m))
    assert res.mean_iou == 1.0
    assert res.n_masks == 3
    assert res.n_degenerate == 0


def test_partial_overlap() -> None:
    t = torch.zeros(1, 4, 4, dtype=torch.bool)
    t[0, :2, :] = True  # 8 pixels
    s = torch.zeros_like(t)
    s[0, :1, :] = True  # 4 pixels, all inside t
    assert mask_iou(_logits(s), _logits(t)).mean_iou == pytest.approx(0.5)


def test_degenerate_teacher_masks_are_excluded_and_counted() -> None:
    t = torch.zeros(3, 8, 8, dtype=torch.bool)
    t[1] = True  # full
    t[2, :4] = True  # half: the only informative mask
    s = t.clone()
    s[0] = True  # wrong on the empty mask, which must not count
    res = mask_iou(_logits(s), _logits(t))
    assert res.n_degenerate == 2
    assert res.degenerate_share == pytest.approx(2 / 3)
    assert res.mean_iou == 1.0
    assert degenerate(t).tolist() == [True, True, False]


def test_all_degenerate_gives_nan() -> None:
    t = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert math.isnan(mask_iou(_logits(t), _logits(t)).mean_iou)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        mask_iou(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))


def test_cosine() -> None:
    a = torch.randn(10)
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
