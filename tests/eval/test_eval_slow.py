"""The harness end to end on the real tiny SAM 2 (random init, 256 px) and the 2 bundled photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.eval.baselines.base import BuildContext
from sam2_quant_plugin.eval.baselines.recipe_onnx import RecipeOnnxMethod
from sam2_quant_plugin.eval.pipeline import run_eval
from sam2_quant_plugin.eval.report import COLUMNS, table_rows
from sam2_quant_plugin.eval.video import build_video_reference, default_video_dir, score_video
from sam2_quant_plugin.int8 import host_int8_path
from sam2_quant_plugin.sam2.ort_modules import OrtImageEncoder

pytestmark = pytest.mark.slow


def test_table_and_8bit_fidelity(tiny_sam2: torch.nn.Module, tmp_path: Path) -> None:
    methods = ["float", "float-input-noise-0.01", "ours-w8a8", "torch-ptq-w4a8"]
    _, paths = run_eval(
        tiny_sam2, out=tmp_path, methods=methods, video=False, points_per_side=4, time_repeats=1
    )
    assert {p.name for p in paths.values()} == {"results.json", "results.md", "size_vs_iou.png"}
    saved = json.loads(paths["json"].read_text())
    assert [r["method"] for r in saved["rows"]] == methods
    assert saved["weights"].startswith("random-init")
    assert host_int8_path().describe() in saved["host"]  # every figure names the CPU and its int8 path
    assert host_int8_path().describe() in paths["md"].read_text()
    cells = table_rows(saved["rows"])
    assert len(cells) == len(methods)
    assert all(len(c) == len(COLUMNS) for c in cells)
    rows = {r["method"]: r for r in saved["rows"]}
    assert "error" not in rows["ours-w8a8"], rows["ours-w8a8"].get("traceback")
    assert rows["float"]["points"]["mask_iou"] == 1.0
    assert rows["ours-w8a8"]["points"]["mask_iou"] >= 1.0 - 0.01
    assert rows["ours-w8a8"]["boxes"]["mask_iou"] >= 1.0 - 0.01
    assert 7.0 < rows["ours-w8a8"]["avg_w_bits"] < 7.1  # 7-bit-magnitude Linears, 8-bit convs
    assert rows["torch-ptq-w4a8"]["size_mib"] < rows["ours-w8a8"]["size_mib"] < rows["float"]["size_mib"]
    # The noise-floor row: the float teacher on a slightly noisy input moves the metric, but only a little,
    # and it is not timed (its speed means nothing).
    floor = rows["float-input-noise-0.01"]
    assert 0.95 < floor["points"]["mask_iou"] < 1.0
    assert floor["embed_cosine"] > 0.999
    assert "cpu_latency_vs_float" not in floor


def test_video_propagation(tiny_sam2: torch.nn.Module, tmp_path: Path, photos: list) -> None:
    frames = sorted(default_video_dir().glob("*.jpg"))[:3]
    for f in frames:
        shutil.copy(f, tmp_path / f.name)
    ref = build_video_reference(tiny_sam2, tmp_path)
    same = score_video(ref, tiny_sam2, tiny_sam2)
    assert same["per_frame_iou"] == [1.0, 1.0, 1.0]
    q = prepare_qat(tiny_sam2, "w8a8")
    calibrate(q, photos, image_size=256, progress=False)
    res = score_video(ref, tiny_sam2, freeze(q))
    assert len(res["per_frame_iou"]) == 3
    assert 0.9 <= res["j_mean"] <= 1.0
    # the deployed twin: the exported encoder runs in onnxruntime inside SAM 2's video code
    work = tmp_path / "work"
    work.mkdir()
    built = RecipeOnnxMethod("w8a8-ort", "w8a8").make_student(BuildContext(tiny_sam2, photos, 256, work))
    assert built.runtime == "onnxruntime"
    assert isinstance(built.model.image_encoder, OrtImageEncoder)
    ort_res = score_video(ref, tiny_sam2, built.model)
    assert len(ort_res["per_frame_iou"]) == 3
    assert abs(ort_res["j_mean"] - res["j_mean"]) < 0.02
