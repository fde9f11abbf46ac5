"""``sam2-quant export`` -> ``validate`` -> ``infer`` on tiny SAM 2 at 256 px, and CLI error paths."""

from __future__ import annotations

import json

import pytest

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.sam2 import bundled_images
from tests._utils.metrics import lower_metric

pytestmark = pytest.mark.onnx


def test_export_validate_infer(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
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
    # a file whose parity falls below the threshold fails with exit 1 and the numbers in the report (the
    # float file matches torch to rounding, so its measured cosine is lowered by 0.01 to stand for a bad one)
    import sam2_quant_plugin.sam2.parity as parity

    lower_metric(monkeypatch, parity, "pipeline_parity", "embed_cosine", by=0.01)
    assert main([*args, "--min-embed-cosine", "0.995"]) == 1
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


@pytest.mark.slow
def test_cuda_profile_with_a_recipe_file_validates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A recipe that is not shipped (as CDPQ writes them): the manifest carries it, so validate can rebuild
    # the PyTorch reference; the CUDA profile adds fp16 MatMulNBits graphs, parity-checked on CPU EP.
    from sam2_quant_plugin.recipe import load_recipe, save_recipe
    from sam2_quant_plugin.recipe.schema import Recipe

    mine = Recipe.from_dict({**load_recipe("w8_weight_only").to_dict(), "name": "my-searched-recipe"})
    path = save_recipe(mine, tmp_path / "recipe.yaml")
    out = tmp_path / "bundle"
    args = [
        "export",
        "--profile",
        "cuda_int4_fp16",
        "--recipe",
        str(path),
        "--image-size",
        "256",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"] == "my-searched-recipe"
    assert manifest["nbits_widths"] == [4, 8]  # the CUDA profile: 2-bit CUDA kernels not verified yet
    assert set(manifest["files"]) == {"encoder", "decoder", "encoder_fp16", "decoder_fp16"}
    img = str(bundled_images()[0])
    assert (
        main(
            ["validate", "--onnx-dir", str(out), "--repeats", "1", "--points-per-side", "2", "--images", img]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert report["parity"]["fp16"]["embed_cosine"] > 0.999


def test_nbits_widths_flag_wins_over_the_profile_and_is_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from sam2_quant_plugin.cli import export_cmd
    from sam2_quant_plugin.errors import ExportError

    p = argparse.ArgumentParser()
    export_cmd.add_arguments(p)
    base = ["--out", str(tmp_path / "o"), "--profile", "cuda_int4_fp16"]
    assert export_cmd.resolve_options(p.parse_args(base))["nbits_widths"] == [4, 8]
    assert export_cmd.resolve_options(p.parse_args([*base, "--nbits-widths", "2", "4", "8"]))[
        "nbits_widths"
    ] == [2, 4, 8]
    assert export_cmd.resolve_options(p.parse_args(["--out", "x"]))["nbits_widths"] == [2, 4, 8]
    bad = tmp_path / "bad.yaml"
    bad.write_text("weight_format: matmulnbits\nnbits_widths: four\n")
    with pytest.raises(ExportError, match="nbits_widths must be a list"):
        export_cmd.resolve_options(p.parse_args(["--out", "x", "--profile", str(bad)]))
