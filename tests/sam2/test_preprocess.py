"""Image loading, listing, bundled assets and the exact SAM 2 input transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.sam2 import (
    build_sam2_model,
    bundled_images,
    bundled_video_frames,
    list_images,
    load_image,
    make_image_predictor,
    to_model_input,
)


def _write_png(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_bundled_assets() -> None:
    images = bundled_images()
    assert [p.name for p in images] == ["groceries.jpg", "truck.jpg"]
    frames = bundled_video_frames()
    assert [p.name for p in frames] == [f"{i:05d}.jpg" for i in range(0, 40, 5)]
    assert all(p.is_file() for p in images + frames)
    assert (images[0].parent.parent / "README.md").is_file()


def test_load_image_rgb_uint8() -> None:
    truck = load_image(bundled_images()[1])
    assert truck.dtype == np.uint8
    assert truck.ndim == 3
    assert truck.shape[2] == 3
    assert truck.shape[:2] == (1200, 1800)


def test_load_image_converts_grey_and_rgba(tmp_path: Path) -> None:
    Image.new("L", (5, 4), 7).save(tmp_path / "grey.png")
    Image.new("RGBA", (5, 4), (1, 2, 3, 4)).save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "grey.png").shape == (4, 5, 3)
    assert load_image(tmp_path / "rgba.png")[0, 0].tolist() == [1, 2, 3]


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    """A phone's portrait photo is stored landscape with orientation 6 (rotate 90 clockwise to view)."""
    stored = np.zeros((30, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # left half white as stored -> top half white once rotated for viewing
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    viewed = load_image(tmp_path / "portrait.jpg")
    assert viewed.shape == (40, 30, 3)
    assert viewed[:15].mean() > 200
    assert viewed[25:].mean() < 50
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)  # no tag: read as stored
    assert load_image(tmp_path / "plain.jpg").shape == (30, 40, 3)


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="cannot read image") as info:
        load_image(bad)
    assert str(bad) in str(info.value)


def test_list_images_folder(tmp_path: Path) -> None:
    b = _write_png(tmp_path / "b.png")
    a = tmp_path / "a.JPG"
    a.write_bytes((tmp_path / "b.png").read_bytes())
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _write_png(tmp_path / "sub" / "c.png")
    assert list_images(tmp_path) == [a, b]
    assert list_images(str(tmp_path)) == [a, b]
    assert list_images(b) == [b]
    assert list_images([b, a, tmp_path / "notes.txt"]) == [a, b]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(DataError, match="not found"):
        list_images([tmp_path / "missing.jpg"])
    with pytest.raises(DataError, match="no images found"):
        list_images([])


@pytest.mark.parametrize("size", [128, 256])
def test_to_model_input_matches_predictor(size: int) -> None:
    images = [load_image(p) for p in bundled_images()]
    x = to_model_input(images, size)
    assert x.shape == (2, 3, size, size)
    assert x.dtype == torch.float32
    predictor = make_image_predictor(build_sam2_model("t", image_size=size))  # a SAM2ImagePredictor
    for i, img in enumerate(images):
        assert torch.equal(x[i], predictor._transforms(img))  # what set_image feeds the model
    # Undo the ImageNet normalisation: values must be back in [0, 1].
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    raw = x * std + mean
    assert raw.min() > -1e-3
    assert raw.max() < 1 + 1e-3


def test_to_model_input_errors() -> None:
    with pytest.raises(DataError, match="no images"):
        to_model_input([], 128)
    with pytest.raises(DataError, match="HxWx3 uint8"):
        to_model_input([np.zeros((4, 4, 3), dtype=np.float32)], 128)
    with pytest.raises(DataError, match="HxWx3 uint8"):
        to_model_input([np.zeros((4, 4), dtype=np.uint8)], 128)
