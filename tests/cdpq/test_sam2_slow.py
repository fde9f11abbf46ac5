"""CDPQ on the real tiny SAM 2 (seeded random init, 128 px): search, package -> vanilla checkpoint."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch

from sam2_quant_plugin.cdpq import CDPQConfig, load_package, package_to_checkpoint, run_cdpq
from sam2_quant_plugin.cdpq.artifacts import read_jsonl
from sam2_quant_plugin.cdpq.session import build_session, load_batches
from sam2_quant_plugin.cli import cdpq_cmd
from sam2_quant_plugin.sam2 import build_sam2_model, decode, encode, point_grid

pytestmark = pytest.mark.slow
SIZE = 128


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)
    return build_sam2_model("sam2.1_hiera_t", image_size=SIZE, seed=0)


def _cfg(**kw: object) -> CDPQConfig:
    base = {
        "image_size": SIZE,
        "target_roots": ("image_encoder.neck",),
        "rounds": 0,
        "points_per_image": 2,
        "boxes_per_image": 0,
        "ladder": (8, 4, 2),
        "impact_threshold": 1e-3,
    }
    return CDPQConfig(**{**base, **kw})


def test_search_on_tiny_sam2_and_vanilla_checkpoint(teacher: torch.nn.Module, tmp_path: Path) -> None:
    summary = run_cdpq(_cfg(), tmp_path, progress=False, teacher=teacher)
    run = Path(summary["run_dir"])
    assert summary["layers"] == 4
    assert len(read_jsonl(run / "attempts.jsonl")) == summary["attempts"] >= 4
    ckpt = package_to_checkpoint(load_package(run / "package.pt"), tmp_path / "vanilla.pt")
    vanilla = build_sam2_model("sam2.1_hiera_t", ckpt, image_size=SIZE)  # strict load
    pkg = load_package(run / "package.pt")
    for name, entry in pkg["layers"].items():
        w = vanilla.get_submodule(name).weight
        assert not torch.equal(w, teacher.get_submodule(name).weight)
        levels = (w / entry["scale"].reshape(-1, *[1] * (w.dim() - 1))).round().unique().numel()
        assert levels <= 2 ** entry["bits"]
    # the vanilla model reproduces the masks of the quantized student it came from
    x = load_batches(_cfg())[1][0].images
    grid = point_grid(2, SIZE)[:, None, :]
    with torch.no_grad():
        fv = encode(vanilla, x)
        mv = decode(vanilla, fv, points=grid, labels=torch.ones(4, 1))["low_res_masks"]
        ft = encode(teacher, x)
        mt = decode(teacher, ft, points=grid, labels=torch.ones(4, 1))["low_res_masks"]
    assert torch.isfinite(mv).all()
    assert mv.shape == mt.shape


def test_cli_cdpq_resume(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cdpq_cmd.add_arguments(parser)
    common = ["--image-size", str(SIZE), "--target-roots", "image_encoder.neck", "--out", str(tmp_path)]
    extra = ["--set", '{"rounds": 0, "points_per_image": 1, "boxes_per_image": 0}', "--no-progress"]
    assert cdpq_cmd.run(parser.parse_args([*common, *extra, "--max-attempts", "2"])) == 0
    (run,) = list(tmp_path.iterdir())
    assert not (run / "summary.json").exists()
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "max_attempts": None}))
    assert cdpq_cmd.run(parser.parse_args(["--resume", str(run), "--no-progress"])) == 0
    assert json.loads((run / "summary.json").read_text())["layers"] == 4


def test_bigger_teacher_uses_output_kd_only(caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(teacher_config="sam2.1_hiera_s")
    with caplog.at_level(logging.WARNING):
        s = build_session(cfg)
    assert s.cache.layers == []
    assert "only stage-level" in caplog.text


def test_byte_budget_matches_the_exported_onnx(teacher: torch.nn.Module, tmp_path: Path) -> None:
    # The budget counts weights as the ONNX export stores them: the searched recipe, exported, holds
    # exactly the bytes the search counted, and no more than the budget.
    import onnx

    from sam2_quant_plugin import calibrate, freeze, load_recipe, prepare_qat
    from sam2_quant_plugin.onnx import weight_bytes
    from sam2_quant_plugin.sam2.export import export_backbone

    budget = 5.0e6  # the 4 Linears of block 11 hold 7.08 M weights: 7.08 MB as int8
    cfg = _cfg(
        target_roots=("image_encoder.trunk.blocks.11",), ladder=(8, 4), order_by="probe", target_bytes=budget
    )
    summary = run_cdpq(cfg, tmp_path, progress=False, teacher=teacher)
    assert summary["stop_reason"] == "budget reached"
    assert sorted(set(summary["bits"].values())) == [4, 8]
    recipe = load_recipe(Path(summary["run_dir"]) / "recipe.yaml")
    frozen = freeze(calibrate(prepare_qat(teacher, recipe), image_size=SIZE, progress=False))
    path = export_backbone(frozen, tmp_path / "enc.onnx", image_size=SIZE, opset=21, weight_format="int4")
    stored = weight_bytes(onnx.load(str(path)))
    assert set(stored) == set(summary["bits"])
    assert sum(stored.values()) == summary["size"]["onnx_weight_bytes"] <= budget
