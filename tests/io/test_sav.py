"""SA-V as Meta ships it (tests/fixtures/sav_tiny, the exact val layout) and prompts from its masks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_quant_plugin.cdpq.data import find_images, find_samples
from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.io.images import video_frames
from sam2_quant_plugin.io.sav import read_mask, sav_layout, sav_samples
from sam2_quant_plugin.sam2.batches import make_batches, prompts_from_masks

SAV = Path(__file__).resolve().parents[1] / "fixtures" / "sav_tiny" / "sav_val"
S = 64


def test_the_val_layout_yields_annotated_frames_with_their_object_masks() -> None:
    assert sav_layout(SAV) == (SAV / "JPEGImages_24fps", SAV / "Annotations_6fps")
    samples = sav_samples(SAV)
    assert [(s.image.parent.name, s.image.name) for s in samples] == [
        ("sav_000001", "00000.jpg"),
        ("sav_000001", "00004.jpg"),
        ("sav_000002", "00000.jpg"),
        ("sav_000002", "00004.jpg"),
    ]  # 6 fps annotations of 24 fps frames: frames 1-3 have none and are skipped
    assert [[m.parent.name for m in s.masks] for s in samples] == [
        ["000", "001"],
        ["000", "001"],
        ["000"],
        ["000"],
    ]
    assert all(m.stem == s.image.stem for s in samples for m in s.masks)
    assert len(sav_samples(SAV, frames_per_video=1)) == 2
    assert find_samples(SAV) == samples
    assert find_images(SAV) == [s.image for s in samples]


def test_unannotated_videos_give_every_frame(tmp_path: Path) -> None:
    root = tmp_path / "sav"
    shutil.copytree(SAV / "JPEGImages_24fps", root / "JPEGImages_24fps")
    samples = sav_samples(root)
    assert len(samples) == 10
    assert not any(s.masks for s in samples)


def test_not_an_sav_root_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"JPEGImages_24fps/<video>/<frame>\.jpg"):
        sav_samples(tmp_path)
    (tmp_path / "JPEGImages_24fps" / "v").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no frames"):
        sav_samples(tmp_path)


def test_a_video_option_given_the_sav_root_or_a_folder_of_clips_names_a_clip(tmp_path: Path) -> None:
    """`--video` / `--calib-video` take one clip: the SA-V root (or its frames folder) names one to pass."""
    with pytest.raises(DataError, match="is an SA-V root") as info:
        video_frames(SAV)
    assert f"e.g. {SAV / 'JPEGImages_24fps' / 'sav_000001'} " in str(info.value)
    assert "cdpq --images" in str(info.value)
    with pytest.raises(DataError, match="holds 2 clip folders") as info:
        video_frames(SAV / "JPEGImages_24fps")
    assert str(info.value).endswith(f"e.g. {SAV / 'JPEGImages_24fps' / 'sav_000001'}.")
    assert len(video_frames(SAV / "JPEGImages_24fps" / "sav_000001")) > 1  # the named clip is one
    (tmp_path / "notes").mkdir()
    with pytest.raises(DataError, match=r"Fix: pass a folder of JPEG frames named by frame number"):
        video_frames(tmp_path)  # no clip inside: the general fix


def test_prompts_lie_inside_their_objects_and_boxes_are_tight() -> None:
    samples = sav_samples(SAV)
    batches = make_batches(
        [s.image for s in samples], S, n_points=5, n_boxes=2, seed=3, masks=[s.masks for s in samples]
    )
    for batch, sample in zip(batches, samples):
        masks = [read_mask(m) for m in sample.masks]
        h, w = masks[0].shape
        for j, (x, y) in enumerate(batch.points[0].tolist()):
            obj = masks[j % len(masks)]
            assert obj[int(y * h / S), int(x * w / S)], (
                f"point {j} of {sample.image} is outside object {j % len(masks)}"
            )
        for j, box in enumerate(batch.boxes[0].tolist()):
            ys, xs = np.nonzero(masks[j % len(masks)])
            want = [xs.min() * S / w, ys.min() * S / h, (xs.max() + 1) * S / w, (ys.max() + 1) * S / h]
            assert box == pytest.approx(want, abs=1e-4)
    again = make_batches(
        [s.image for s in samples], S, n_points=5, n_boxes=2, seed=3, masks=[s.masks for s in samples]
    )
    assert all(torch.equal(a.points, b.points) for a, b in zip(batches, again)), (
        "prompts depend only on the seed"
    )


def test_images_without_masks_keep_random_prompts_and_empty_masks_fall_back() -> None:
    assert prompts_from_masks([np.zeros((4, 4), bool)], S, 2, 1, torch.Generator()) is None
    samples = sav_samples(SAV)
    plain = make_batches([samples[0].image], S, n_points=3, n_boxes=1, seed=0)
    none = make_batches([samples[0].image], S, n_points=3, n_boxes=1, seed=0, masks=[()])
    assert torch.equal(plain[0].points, none[0].points)


def test_a_mask_of_another_size_or_a_corrupt_one_is_a_named_error(tmp_path: Path) -> None:
    root = tmp_path / "sav_val"
    shutil.copytree(SAV, root)
    png = root / "Annotations_6fps" / "sav_000002" / "000" / "00000.png"
    from PIL import Image

    Image.new("L", (10, 10), 255).save(png)
    samples = sav_samples(root)
    with pytest.raises(DataError, match=r"annotation .* is 10x10 but its frame is 96x64"):
        make_batches([s.image for s in samples], S, masks=[s.masks for s in samples])
    png.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read annotation mask"):
        make_batches([s.image for s in samples], S, masks=[s.masks for s in samples])


def test_cdpq_reads_an_sav_root_with_its_masks(caplog: pytest.LogCaptureFixture) -> None:
    from sam2_quant_plugin.cdpq.config import CDPQConfig
    from sam2_quant_plugin.cdpq.session import load_batches

    cfg = CDPQConfig(train_images=str(SAV), image_size=S, points_per_image=2, boxes_per_image=1)
    with caplog.at_level("INFO"):
        train, val = load_batches(cfg)
    assert len(train) == len(val) == 4
    assert "prompts from annotation masks on 4 of 4 image(s)" in caplog.text
    first = read_mask(sav_samples(SAV)[0].masks[0])
    x, y = train[0].points[0, 0].tolist()
    assert first[int(y * first.shape[0] / S), int(x * first.shape[1] / S)]
