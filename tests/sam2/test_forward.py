"""encode/decode must reproduce SAM2ImagePredictor on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.utils.amg import build_point_grid

from sam2_quant_plugin.sam2 import (
    build_sam2_model,
    bundled_images,
    decode,
    encode,
    load_image,
    make_image_predictor,
    point_grid,
    to_model_input,
)

SIZE = 256
POINT = (900.0, 600.0)  # (x, y) in truck.jpg pixels (1800x1200): on the truck
BOX = (100.0, 300.0, 1700.0, 1000.0)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_sam2_model("t", image_size=SIZE, seed=0)


@pytest.fixture(scope="module")
def truck() -> np.ndarray:
    return load_image(bundled_images()[1])


@pytest.fixture(scope="module")
def predictor(model: torch.nn.Module, truck: np.ndarray):
    pred = make_image_predictor(model)
    pred.set_image(truck)
    return pred


@pytest.fixture(scope="module")
def feats(model: torch.nn.Module, truck: np.ndarray) -> dict:
    with torch.no_grad():
        return encode(model, to_model_input([truck], SIZE))


def _to_input_px(xy: tuple[float, ...], hw: tuple[int, int]) -> torch.Tensor:
    h, w = hw
    scale = torch.tensor([w, h] * (len(xy) // 2), dtype=torch.float32)
    return torch.tensor(xy, dtype=torch.float32) / scale * SIZE


def test_encode_matches_set_image(predictor, feats: dict) -> None:
    assert feats["image_embed"].shape == (1, 256, SIZE // 16, SIZE // 16)
    assert [f.shape for f in feats["high_res_feats"]] == [
        (1, 32, SIZE // 4, SIZE // 4),
        (1, 64, SIZE // 8, SIZE // 8),
    ]
    assert torch.equal(feats["image_embed"], predictor._features["image_embed"])
    for ours, theirs in zip(feats["high_res_feats"], predictor._features["high_res_feats"]):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("multimask", [True, False])
def test_decode_point_matches_predict(
    model, predictor, feats: dict, truck: np.ndarray, multimask: bool
) -> None:
    _, ious, low_res = predictor.predict(
        point_coords=np.array([POINT]),
        point_labels=np.array([1]),
        multimask_output=multimask,
        return_logits=True,
    )
    pts = _to_input_px(POINT, truck.shape[:2]).view(1, 1, 2)
    with torch.no_grad():
        out = decode(model, feats, points=pts, labels=torch.ones(1, 1), multimask=multimask)
    n_masks = 3 if multimask else 1
    assert out["low_res_masks"].shape == (1, n_masks, SIZE // 4, SIZE // 4)
    assert out["iou_predictions"].shape == (1, n_masks)
    ours = out["low_res_masks"].clamp(-32.0, 32.0)[0].numpy()  # the predictor clamps its low-res logits
    assert np.abs(ours - low_res).max() < 1e-5
    assert np.abs(out["iou_predictions"][0].numpy() - ious).max() < 1e-6


def test_decode_box_and_point_matches_predict(model, predictor, feats: dict, truck: np.ndarray) -> None:
    _, _, low_res = predictor.predict(
        point_coords=np.array([POINT]),
        point_labels=np.array([0]),
        box=np.array(BOX),
        multimask_output=False,
        return_logits=True,
    )
    hw = truck.shape[:2]
    with torch.no_grad():
        out = decode(
            model,
            feats,
            points=_to_input_px(POINT, hw).view(1, 1, 2),
            labels=torch.zeros(1, 1),
            boxes=_to_input_px(BOX, hw).view(1, 4),
        )
    assert np.abs(out["low_res_masks"].clamp(-32, 32)[0].numpy() - low_res).max() < 1e-5


@torch.no_grad()
def test_batched_decode_equals_one_by_one(model, feats: dict) -> None:
    grid = point_grid(3, SIZE)
    batched = decode(model, feats, points=grid[:, None, :], labels=torch.ones(len(grid), 1), multimask=True)
    assert batched["low_res_masks"].shape == (9, 3, SIZE // 4, SIZE // 4)
    for i in (0, 4, 8):
        single = decode(
            model, feats, points=grid[i : i + 1, None, :], labels=torch.ones(1, 1), multimask=True
        )
        assert (batched["low_res_masks"][i] - single["low_res_masks"][0]).abs().max() < 1e-4
        assert (batched["iou_predictions"][i] - single["iou_predictions"][0]).abs().max() < 1e-5


def test_decode_errors(model, feats: dict) -> None:
    with pytest.raises(ValueError, match="points or boxes"):
        decode(model, feats)
    with pytest.raises(ValueError, match="labels"):
        decode(model, feats, points=torch.zeros(1, 1, 2))
    two = {
        "image_embed": feats["image_embed"].expand(2, -1, -1, -1),
        "high_res_feats": feats["high_res_feats"],
    }
    with pytest.raises(ValueError, match="2 images but 3 prompts"):
        decode(model, two, points=torch.zeros(3, 1, 2), labels=torch.ones(3, 1))


def test_point_grid() -> None:
    grid = point_grid(4, SIZE)
    assert grid.shape == (16, 2)
    assert grid.dtype == torch.float32
    expected = torch.from_numpy(build_point_grid(4) * SIZE).float()
    assert torch.allclose(grid, expected)
    assert grid[0].tolist() == [32.0, 32.0]
    assert grid[1].tolist() == [96.0, 32.0]  # x varies fastest
    assert torch.equal(grid, point_grid(4, SIZE))
    with pytest.raises(ValueError, match="n_per_side"):
        point_grid(0, SIZE)


def test_predictor_runs_at_small_size(predictor, truck: np.ndarray) -> None:
    masks, ious, low_res = predictor.predict(
        point_coords=np.array([POINT]), point_labels=np.array([1]), multimask_output=True
    )
    assert masks.shape == (3, *truck.shape[:2])
    assert set(np.unique(masks).tolist()) <= {0.0, 1.0}  # thresholded masks (as float)
    assert ious.shape == (3,)
    assert low_res.shape == (3, SIZE // 4, SIZE // 4)
    assert predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)]
