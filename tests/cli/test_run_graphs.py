"""``sam2-quant run`` exports the graphs its recipe targets: a video recipe adds the memory graphs, and
the report lists every file the export wrote."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.sam2 import bundled_images
from tests._utils import torch_threads

MEMORY = ("memory_attention", "memory_encoder")


@pytest.mark.slow
@pytest.mark.onnx
def test_run_with_a_video_recipe_exports_the_memory_graphs(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(bundled_images()[1], photos)
    out = tmp_path / "runs"
    args = ["run", "--recipe", "w8a8_video", "--image-size", "64", "--images", str(photos)]
    # --graphs on top of what the recipe targets: the union, each graph once. One thread: at 64 px a pool
    # only spin-waits (5 min instead of 45 s on a busy 2-core machine)
    with torch_threads(1):
        assert main([*args, "--points-per-side", "2", "--graphs", "memory_encoder", "--out", str(out)]) == 0
    (run,) = (p for p in out.iterdir() if p.is_dir())
    manifest = json.loads((run / "onnx" / "manifest.json").read_text())
    assert list(manifest["files"]) == ["encoder", "decoder", *MEMORY]
    report = json.loads((run / "report.json").read_text())
    files = report["onnx"]["files"]
    assert files == [f"onnx/{manifest['files'][k]}" for k in manifest["files"]] + ["onnx/manifest.json"]
    assert all((run / f).is_file() for f in files)
    md = (run / "report.md").read_text()
    assert all(f in md for f in files)
    assert "--graphs memory_encoder" in md
    # the memory graphs are checked where they run: inside SAM 2's video loop, against fake-quant
    video = report["onnx"]["extra_vs_torch_fake_quant_fused"]["video"]
    assert video["graphs"] == "memory_attention+memory_encoder"
    assert video["max_obj_ptr_tokens"] > 0
    assert f"video J {video['video_j']:.4f}" in md
    assert not report["onnx"]["parity_failures"]
    # what onnxruntime runs: every W8A8 Linear of the encoder and memory graphs on an int8 kernel, the
    # weight-only convs as float convs (weights folded at load), no Q/DQ of a weight left
    kernels = report["onnx"]["kernels"]
    assert kernels["memory_attention"]["int8"] == 40
    assert kernels["memory_encoder"]["int8"] == 4
    assert kernels["memory_encoder"]["float"] > 0
    assert kernels["encoder"]["int8"] > 0
    assert "memory_attention int8 40" in md


def test_run_graphs_without_export_exits_2_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["run", "--no-export", "--graphs", *MEMORY, "--image-size", "64", "--out", str(tmp_path / "runs")]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert "--no-export skips the export" in caplog.text
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.onnx
def test_export_with_a_video_recipe_adds_the_memory_graphs(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    argv = ["export", "--recipe", "w8a8_video", "--image-size", "64", "--out", str(out)]
    with torch_threads(1):
        assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["files"]) == ["encoder", "decoder", *MEMORY]  # no --graphs needed
