"""Issue #11's data bugs: racing exports, bench writing outside --out, --target-mb 0, resume after
--max-attempts; and the pieces behind them (exclusive placement, calibration photos, scaled 16-bit PNGs)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.eval.video import first_frames
from sam2_quant_plugin.io.atomic import atomic_write_text
from sam2_quant_plugin.sam2 import bundled_images, load_image

REPO = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_exports_racing_on_one_out_one_loses_cleanly(tmp_path: Path, good_bundle: Path) -> None:
    out = tmp_path / "bundle"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "sam2_quant_plugin.cli.main",
        "export",
        "--image-size",
        "64",
        "--out",
        str(out),
    ]
    procs = {
        seed: subprocess.Popen([*cmd, "--seed", str(seed)], env=env, stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    }
    codes = {seed: p.wait(timeout=600) for seed, p in procs.items()}
    errs = {seed: p.stderr.read() for seed, p in procs.items()}  # type: ignore[union-attr]
    assert sorted(codes.values()) == [0, 2], errs
    winner = next(s for s, c in codes.items() if c == 0)
    loser_err = errs[1 - winner]
    assert "Traceback" not in loser_err
    assert "refusing" in loser_err or "filled by another process" in loser_err, loser_err
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"seed={winner}" in manifest["weights"]
    same_as_seed0 = _sha(out / "encoder.onnx") == _sha(
        good_bundle / "encoder.onnx"
    )  # export is deterministic
    assert same_as_seed0 == (winner == 0)  # the files are the winner's, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no partial folder left


def test_exclusive_write_never_overwrites(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "a.txt", "first")
    with pytest.raises(FileExistsError):
        atomic_write_text(path, "second")
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_bench_writes_nothing_outside_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "docs" / "BENCHMARKS.md"
    doc.parent.mkdir()
    doc.write_text("the project's page\n")
    monkeypatch.chdir(tmp_path)
    args = ["bench", "--variants", "float", "--image-size", "64", "--repeats", "1", "--points-per-side", "1"]
    assert main([*args, "--out", str(tmp_path / "runs")]) == 0
    assert doc.read_text() == "the project's page\n"
    (run,) = (tmp_path / "runs").iterdir()
    assert "| float |" in (run / "BENCHMARKS.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "runs"]


def test_cdpq_target_mb_0_is_a_budget_not_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["cdpq", "--target-mb", "0", "--image-size", "64", "--out", str(tmp_path / "runs")]) == 2
    assert "target_bytes=0.0: a size budget must be a positive number" in caplog.text
    assert not (tmp_path / "runs").exists()


def test_cdpq_impossible_budget_fails_before_the_search(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["cdpq", "--image-size", "64", "--target-roots", "image_encoder.neck", "--target-mb", "0.001"]
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--no-progress", "--out", str(tmp_path / "runs")]) == 2
    assert "cannot be met" in caplog.text
    assert list((tmp_path / "runs").iterdir()) == []  # the run folder of a run that never started is removed


@pytest.mark.slow
def test_cdpq_resume_after_max_attempts_finishes(tmp_path: Path) -> None:
    small = '{"rounds": 0, "max_passes": 1, "points_per_image": 1, "boxes_per_image": 0}'
    args = [
        "cdpq",
        "--image-size",
        "64",
        "--target-roots",
        "image_encoder.neck",
        "--no-progress",
        "--set",
        small,
    ]
    assert main([*args, "--max-attempts", "1", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert not (run / "summary.json").exists()
    assert main(["cdpq", "--resume", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is False
    assert summary["attempts"] > 1


def test_validate_calibrates_reference_on_recorded_photos(tmp_path: Path, quant_bundle: Path) -> None:
    manifest = json.loads((quant_bundle / "manifest.json").read_text())
    assert manifest["manifest_version"] == 2
    assert (manifest["family"], manifest["seed"]) == ("sam2", 0)
    assert [i["name"] for i in manifest["calibration"]["images"]] == [bundled_images()[1].name]
    bundle = tmp_path / "b"
    bundle.mkdir()
    for f in quant_bundle.iterdir():
        os.link(f, bundle / f.name)
    photos = quant_bundle.parent / "photos"
    args = ["validate", "--onnx-dir", str(bundle), "--repeats", "1", "--points-per-side", "2"]
    # parity on the other photo; the reference is calibrated on the recorded one (found via --calib-images)
    assert main([*args, "--images", str(bundled_images()[0]), "--calib-images", str(photos)]) == 0
    report = json.loads((bundle / "report.json").read_text())
    assert report["parity"]["simulated"]["embed_cosine"] > 0.999


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    assert img.shape == (64, 64, 3)
    assert img.dtype == np.uint8
    assert (img == 255).mean() < 0.01
    assert abs(int(img[32, 0, 0]) - round(int(grey[32, 0]) / 257)) <= 1


def test_video_frame_subset_goes_into_the_work_dir(tmp_path: Path) -> None:
    frames = tmp_path / "video"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(frames / f"{i:05d}.jpg")
    (tmp_path / "work").mkdir()
    sub = first_frames(frames, 2, tmp_path / "work")
    assert sub.parent == tmp_path / "work"
    assert len(list(sub.iterdir())) == 2


def test_reference_seed_comes_from_the_manifest_field_not_the_label(caplog: pytest.LogCaptureFixture) -> None:
    from sam2_quant_plugin.io.bundle import reference_seed

    # version 2: the field wins even when the label says otherwise
    assert reference_seed({"manifest_version": 2, "seed": 7, "weights": "random-init(seed=3)"}) == 7
    assert reference_seed({"manifest_version": 2, "seed": None, "weights": "/ckpt.pt"}) == 0
    with caplog.at_level("WARNING"):  # version 1 bundles: the label, read once, with a warning
        assert reference_seed({"weights": "random-init(seed=3)"}) == 3
    assert "does not record the seed" in caplog.text
