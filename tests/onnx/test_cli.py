"""``sam2-quant export`` -> ``validate`` -> ``infer`` on tiny SAM 2 at 256 px, and CLI error paths."""

from __future__ import annotations

import json

import pytest

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.sam2 import bundled_images

pytestmark = pytest.mark.onnx


def test_export_validate_infer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bundle"
    assert main(["export", "--out", str(out), "--image-size", "256", "--weight-format", "int8"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["random_init"] is True
    assert set(manifest["files"]) == {"encoder", "decoder"}
    img = str(bundled_images()[0])
    args = ["validate", "--onnx-dir", str(out), "--repeats", "1", "--points-per-side", "2", "--images", img]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert report["parity"]["fused"]["mask_iou"] > 0.99
    assert "RANDOM-INIT" in (out / "report.md").read_text()
    assert (
        main(
            [
                "infer",
                "--onnx-dir",
                str(out),
                "--image",
                img,
                "--point",
                "100,80",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert (tmp_path / "m.png").is_file()
    assert (tmp_path / "m_overlay.png").is_file()
    # a too strict threshold fails with a non-zero exit and the numbers in the report
    assert main([*args, "--min-embed-cosine", "1.01"]) == 1
    assert json.loads((out / "report-2.json").read_text())["passed"] is False


test_export_validate_infer = pytest.mark.slow(test_export_validate_infer)


def test_bad_inputs_exit_2(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    assert main(["validate", "--onnx-dir", str(tmp_path)]) == 2
    assert "manifest.json" in caplog.text
    assert main(["export", "--out", str(tmp_path), "--profile", "nope"]) == 2
    assert "cpu_w8a8" in caplog.text
    assert (
        main(
            [
                "export",
                "--out",
                str(tmp_path),
                "--weight-format",
                "int4",
                "--opset",
                "17",
                "--image-size",
                "64",
            ]
        )
        == 2
    )
    assert "opset >= 21" in caplog.text
