"""Calibrating on the user's clip (``calibrate(video=...)``, ``--calib-video``): the clip's frames reach the
memory layers, a bad folder is a named error, and ``validate`` rebuilds its reference on the recorded clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sam2_quant_plugin import calibrate, prepare_qat, quantizers
from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.errors import BundleError, CalibrationError, DataError
from sam2_quant_plugin.io.photos import describe_photos, reference_video
from sam2_quant_plugin.recipe import Recipe, load_recipe
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.video import default_video_dir, video_frames
from tests.conftest import SMALL as S

SIZE = 64  # the smallest input SAM 2 takes (stride 32, its memory path at 4x4 tokens)


def _clip(folder: Path, frames: list[Path]) -> Path:
    """A clip of ``frames`` renumbered from 00000.jpg."""
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        shutil.copy(f, folder / f"{i:05d}.jpg")
    return folder


def test_video_frames_sorts_by_number_and_names_bad_folders(tmp_path: Path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    for n in (10, 2, 1):
        shutil.copy(video_frames(default_video_dir())[0], clip / f"{n}.jpg")
    assert [p.name for p in video_frames(clip)] == ["1.jpg", "2.jpg", "10.jpg"]
    with pytest.raises(DataError, match="not found"):
        video_frames(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no \.jpg"):
        video_frames(tmp_path)
    (clip / "cover.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"\['cover.jpg'\] are not frame numbers"):
        video_frames(clip)


def test_calibrate_refuses_a_loop_and_a_clip_together(tiny_sam2: torch.nn.Module) -> None:
    q = prepare_qat(tiny_sam2, "w8a8")
    with pytest.raises(CalibrationError, match="both forward_loop and video"):
        calibrate(q, forward_loop=lambda m: None, video=default_video_dir())


def _memory_ranges(
    model: torch.nn.Module, clip: Path, size: int = S, recipe: str | Recipe = "w8a8_video"
) -> dict[str, float]:
    q = prepare_qat(model, recipe)
    calibrate(q, [load_image(bundled_images()[0])], image_size=size, progress=False, video=clip)
    return {
        name: float(info.module.scale.flatten()[0])
        for (name, kind), info in quantizers(q).items()
        if kind == "activation" and name.startswith("memory_attention.")
    }


@pytest.mark.slow
def test_the_users_clip_is_what_memory_layers_calibrate_on(tmp_path: Path) -> None:
    model = build_sam2_model("sam2.1_hiera_t", image_size=SIZE, seed=0)  # 64 px: 3 clips in seconds
    shipped = load_recipe("w8a8_video").to_dict()
    default = {**shipped["default"], "weight": {**shipped["default"]["weight"], "rounding": "nearest"}}
    recipe = Recipe.from_dict({**shipped, "default": default})  # GPTQ's rounding is not what is tested
    frames = video_frames(default_video_dir())
    early = _memory_ranges(model, _clip(tmp_path / "early", frames[:3]), SIZE, recipe)
    late = _memory_ranges(model, _clip(tmp_path / "late", frames[-3:][::-1]), SIZE, recipe)
    again = _memory_ranges(model, _clip(tmp_path / "early-copy", frames[:3]), SIZE, recipe)
    assert early
    assert early == again
    assert early != late  # another clip moves the memory layers' ranges: the clip is what they saw


def test_manifest_records_the_clip_and_validate_finds_it(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip", video_frames(default_video_dir())[:2])
    record = describe_photos(bundled_images(), bundled=True, video=clip)
    manifest = {"recipe": "w8a8_video", "calibration": json.loads(json.dumps(record))}
    assert reference_video(manifest, None) == clip.resolve()
    assert reference_video({"recipe": "w8a8", "calibration": {"bundled": True}}, None) is None
    moved = tmp_path / "moved"
    clip.rename(moved)
    with pytest.raises(BundleError, match="--calib-video FOLDER"):
        reference_video(manifest, None)
    assert reference_video(manifest, str(moved)) == moved
    shutil.copy(video_frames(default_video_dir())[5], moved / "00001.jpg")  # a frame changed
    with pytest.raises(BundleError, match="differ from those export calibrated on"):
        reference_video(manifest, str(moved))


@pytest.mark.slow
def test_export_on_a_clip_then_validate_rebuilds_on_it(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip", video_frames(default_video_dir())[2:5])
    out = tmp_path / "bundle"
    argv = ["export", "--recipe", "w8a8_video", "--calib-video", str(clip), "--image-size", "64"]
    assert main([*argv, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in manifest["calibration"]["video"]["frames"]] == [
        "00000.jpg",
        "00001.jpg",
        "00002.jpg",
    ]
    assert main(["validate", "--onnx-dir", str(out), "--repeats", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["passed"]
    assert report["parity"]["fused"]["embed_cosine"] > 0.999
