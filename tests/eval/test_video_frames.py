"""eval.video helpers that need no model: frame selection and first-frame prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sam2_quant_plugin.eval.video import default_video_dir, first_frame_points, first_frames


def _frames(folder: Path, names: list[str]) -> None:
    for n in names:
        Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(folder / n)


def test_first_frames_in_frame_order(tmp_path: Path) -> None:
    _frames(tmp_path, ["10.jpg", "2.jpg", "1.jpg"])
    picked = first_frames(tmp_path, 2)
    assert picked != tmp_path
    assert sorted(p.name for p in picked.iterdir()) == ["1.jpg", "2.jpg"]
    assert first_frames(tmp_path, None) == tmp_path
    assert first_frames(tmp_path, 5) == tmp_path


def test_first_frame_points_centre(tmp_path: Path) -> None:
    _frames(tmp_path, ["0.jpg"])
    pts, (h, w) = first_frame_points(tmp_path, 1)
    assert (h, w) == (20, 40)
    assert pts.tolist() == [[20.0, 10.0]]
    assert len(first_frame_points(default_video_dir(), 2)[0]) == 4
