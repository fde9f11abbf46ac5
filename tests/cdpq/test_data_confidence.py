from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_quant_plugin.cdpq.confidence import get_heuristic, heuristics, order_candidates, register
from sam2_quant_plugin.cdpq.data import find_images, sav_frames
from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.sam2.batches import make_batches, sample_prompts
from sam2_quant_plugin.sam2.preprocess import bundled_images


def _sav_tree(root: Path) -> None:
    for video in ("sav_002", "sav_001"):
        for frame in ("00010", "00000", "00005"):
            d = root / "JPEGImages" / video
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 30, 3), 80, np.uint8)).save(d / f"{frame}.jpg")


def test_sav_layout_sorted_and_subsampled(tmp_path: Path) -> None:
    _sav_tree(tmp_path)
    frames = sav_frames(tmp_path)
    assert [f"{p.parent.name}/{p.stem}" for p in frames][:3] == [
        "sav_001/00000",
        "sav_001/00005",
        "sav_001/00010",
    ]
    assert len(sav_frames(tmp_path, frames_per_video=2)) == 4
    assert find_images(tmp_path) == frames
    with pytest.raises(DataError):
        sav_frames(tmp_path / "JPEGImages")


def test_default_is_bundled_photos_and_batches(tmp_path: Path) -> None:
    assert find_images(None) == bundled_images()
    _sav_tree(tmp_path)
    batches = make_batches(find_images(tmp_path), 64, batch_size=4, n_points=3, n_boxes=2, seed=1)
    assert [len(b) for b in batches] == [4, 2]
    assert batches[0].images.shape == (4, 3, 64, 64)
    assert batches[0].boxes.shape == (4, 2, 4)


def test_prompts_deterministic_by_seed() -> None:
    a = sample_prompts(2, 128, 4, 2, seed=3)
    b = sample_prompts(2, 128, 4, 2, seed=3)
    c = sample_prompts(2, 128, 4, 2, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    pts, _, boxes = a
    assert pts.min() >= 0.1 * 128
    assert pts.max() <= 0.9 * 128
    assert (boxes[..., 2:] > boxes[..., :2]).all()


def test_heuristics_registered_and_ordering() -> None:
    assert {"mean", "mean+variance", "trend"} <= set(heuristics())
    hist = {"a": [1.0, 1.0], "b": [0.1, 0.1], "c": [0.5, 0.05]}
    assert [n for n, _ in order_candidates(hist, ["a", "b", "c"], "mean")] == ["b", "c", "a"]
    assert get_heuristic("trend")([0.5, 0.05]) < get_heuristic("mean")([0.5, 0.05])
    assert get_heuristic("mean+variance")([0.5, 0.05]) > get_heuristic("mean")([0.5, 0.05])
    ranked = order_candidates(
        hist, ["a", "b"], "mean", sensitivity={"a": 0.0, "b": 10.0}, sensitivity_weight=5
    )
    assert ranked[0][0] == "a"  # sensitivity outweighs the loss history
    with pytest.raises(KeyError):
        get_heuristic("nope")

    @register("last")
    def last(h: list[float]) -> float:
        return h[-1]

    assert [n for n, _ in order_candidates(hist, ["a", "c"], "last")] == ["c", "a"]
