"""eval.harness on the real tiny SAM 2 at 64 px (seconds): teacher vs itself, a features callable, seeds."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sam2_quant_plugin.eval.harness import build_reference, score_student
from sam2_quant_plugin.sam2 import build_sam2_model, encode

SIZE = 64


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)
    return build_sam2_model("sam2.1_hiera_t", image_size=SIZE, seed=0)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(2)]


def test_teacher_against_itself(model: torch.nn.Module, images: list[np.ndarray]) -> None:
    ref = build_reference(model, images, image_size=SIZE, points_per_side=2, progress=False)
    res = score_student(ref, model, model, progress=False)
    assert res["points"]["n_masks"] == 2 * 4
    assert res["boxes"]["n_masks"] == sum(len(r.boxes) for r in ref.images)
    for key in ("points", "boxes"):
        assert res[key]["mask_iou"] == 1.0 or res[key]["n_degenerate"] == res[key]["n_masks"]
    assert res["embed_cosine"] == pytest.approx(1.0)


def test_features_callable_uses_teacher_decoder(model: torch.nn.Module, images: list[np.ndarray]) -> None:
    ref = build_reference(model, images, image_size=SIZE, points_per_side=2, progress=False)

    def noisy(x: torch.Tensor) -> dict:
        feats = encode(model, x)
        gen = torch.Generator().manual_seed(0)
        embed = feats["image_embed"]
        return {**feats, "image_embed": embed + 0.5 * embed.std() * torch.randn(embed.shape, generator=gen)}

    res = score_student(ref, noisy, model, progress=False)
    assert 0.5 < res["embed_cosine"] < 0.999
    assert res["high_res_cosine"] == pytest.approx(1.0)


def test_reference_is_deterministic(model: torch.nn.Module, images: list[np.ndarray]) -> None:
    a = build_reference(model, images, image_size=SIZE, points_per_side=2, seed=3, progress=False)
    b = build_reference(model, images, image_size=SIZE, points_per_side=2, seed=3, progress=False)
    for ra, rb in zip(a.images, b.images):
        assert torch.equal(ra.boxes, rb.boxes)
        assert torch.equal(ra.point_logits, rb.point_logits)
    assert a.describe()["point_prompts"] == "2x2 grid, one point per prompt"
