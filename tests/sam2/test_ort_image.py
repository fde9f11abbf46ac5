"""``OnnxImagePredictor``: a float bundle gives the masks ``SAM2ImagePredictor`` gives on the torch model, for
points, background points and boxes; bad calls name the fix (tiny SAM 2, seeded random init, 256 px)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.sam2 import bundled_images, load_image, make_image_predictor
from sam2_quant_plugin.sam2.ort_image import OnnxImagePredictor
from tests.conftest import SMALL as S

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


@pytest.fixture(scope="module")
def bundle(tiny_sam2: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image") / "bundle"
    export_bundle(copy.deepcopy(tiny_sam2), out, image_size=S)
    return out


PROMPTS = [  # (points, labels, box) in photo pixels of the truck photo
    ([[500.0, 375.0]], [1], None),
    ([[500.0, 375.0], [100.0, 100.0]], [1, 0], None),
    (None, None, [300.0, 200.0, 900.0, 700.0]),
    ([[600.0, 450.0]], [1], [300.0, 200.0, 900.0, 700.0]),
]


@pytest.mark.parametrize(("points", "labels", "box"), PROMPTS)
def test_float_bundle_gives_the_torch_predictors_masks(tiny_sam2, bundle, points, labels, box) -> None:  # type: ignore[no-untyped-def]
    photo = load_image(bundled_images()[1])
    ours = OnnxImagePredictor(bundle)
    ours.set_image(photo)
    got = ours.predict(points, labels, box)
    ref = make_image_predictor(tiny_sam2)
    ref.set_image(photo)
    with torch.no_grad():
        masks, scores, logits = ref.predict(
            point_coords=None if points is None else np.asarray(points),
            point_labels=None if labels is None else np.asarray(labels),
            box=None if box is None else np.asarray(box),
            multimask_output=False,
        )
    assert got.masks.shape == masks.shape == (1, *photo.shape[:2])
    assert got.masks.dtype == np.bool_
    inter = np.logical_and(got.masks, masks).sum()
    union = np.logical_or(got.masks, masks).sum()
    assert union > 0
    assert inter / union > 0.99
    np.testing.assert_allclose(got.scores, scores, atol=2e-3)
    np.testing.assert_allclose(got.logits, logits, atol=2e-2 * float(np.abs(logits).max()))
    assert np.array_equal(got.best, got.masks[0])


def test_a_path_reads_the_photo_as_an_array_does(bundle) -> None:  # type: ignore[no-untyped-def]
    path = bundled_images()[0]
    p = OnnxImagePredictor(bundle)
    p.set_image(path)
    from_path = p.predict([[200.0, 150.0]])
    p.set_image(load_image(path))
    assert np.array_equal(p.predict([[200.0, 150.0]]).logits, from_path.logits)


def test_bad_calls_name_the_fix(bundle) -> None:  # type: ignore[no-untyped-def]
    p = OnnxImagePredictor(bundle)
    with pytest.raises(DataError, match="set_image"):
        p.predict([[1.0, 1.0]])
    p.set_image(bundled_images()[0])
    with pytest.raises(DataError, match=r"2 point\(s\) but 1 label"):
        p.predict([[1.0, 1.0], [2.0, 2.0]], [1])
    with pytest.raises(DataError, match="no prompt"):
        p.predict()
    with pytest.raises(DataError, match="finite"):
        p.predict([[float("nan"), 1.0]])
