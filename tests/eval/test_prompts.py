"""eval.prompts: boxes from masks, dedupe, fixed grid, determinism."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.eval.prompts import box_iou, boxes_from_teacher, fixed_boxes, mask_boxes


def test_mask_boxes_tight_and_exclusive() -> None:
    m = torch.zeros(2, 8, 8, dtype=torch.bool)
    m[0, 2:5, 1:7] = True
    boxes = mask_boxes(m, scale=4.0)
    assert boxes[0].tolist() == [4.0, 8.0, 28.0, 20.0]
    assert boxes[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # empty mask


def test_box_iou() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_fixed_boxes_inside_image() -> None:
    b = fixed_boxes(96, 3)
    assert b.shape == (9, 4)
    assert b.min() >= 0
    assert b.max() <= 96
    assert (b[:, 2:] > b[:, :2]).all()


def _teacher_logits() -> torch.Tensor:
    m = torch.zeros(5, 1, 16, 16, dtype=torch.bool)
    m[0, 0, 2:6, 2:6] = True
    m[1, 0, 2:6, 2:6] = True  # duplicate of 0
    m[2, 0, 8:14, 1:4] = True
    m[3, 0] = True  # full: degenerate
    return m.float() * 2 - 1


def test_boxes_from_teacher_dedupes_and_skips_degenerate() -> None:
    boxes, source = boxes_from_teacher(_teacher_logits(), 64, mode="teacher")
    assert source == "2 teacher-masks"
    assert boxes.tolist() == [[8.0, 8.0, 24.0, 24.0], [4.0, 32.0, 16.0, 56.0]]


def test_boxes_modes_and_fallback() -> None:
    both, src = boxes_from_teacher(_teacher_logits(), 64, mode="both")
    assert len(both) == 2 + 9
    assert src == "2 teacher-masks + 9 fixed-grid"
    fixed, src = boxes_from_teacher(_teacher_logits(), 64, mode="fixed")
    assert torch.equal(fixed, fixed_boxes(64))
    assert src == "9 fixed-grid"
    empty = -torch.ones(3, 1, 16, 16)
    _, src = boxes_from_teacher(empty, 64, mode="teacher")
    assert src == "9 fixed-grid"
    with pytest.raises(ValueError, match="box mode"):
        boxes_from_teacher(empty, 64, mode="nope")


def test_subset_is_seeded() -> None:
    m = torch.zeros(12, 1, 32, 32, dtype=torch.bool)
    for i in range(12):
        m[i, 0, i : i + 3, 2 * i : 2 * i + 5] = True
    logits = m.float() * 2 - 1
    a, _ = boxes_from_teacher(logits, 64, max_boxes=4, seed=1, mode="teacher")
    b, _ = boxes_from_teacher(logits, 64, max_boxes=4, seed=1, mode="teacher")
    assert len(a) == 4
    assert torch.equal(a, b)
