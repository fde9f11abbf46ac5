"""Saturation checks read from the quantizers; export refuses or marks files that would be wrong on AVX2."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

import sam2_quant_plugin.int8.deploy as deploy
from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.api import INPUT_FQ, quant_state
from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.errors import ConfigError, ExportError
from sam2_quant_plugin.int8 import int8_layers, saturation_report
from sam2_quant_plugin.int8.deploy import NOTE_KEY, SAFE_KEY
from sam2_quant_plugin.int8.safety import check_recipe_target, plan_risk
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.recipe import shipped_recipes
from sam2_quant_plugin.sam2 import bundled_images
from tests._utils import make_tiny_sam2_like, tiny_input
from tests.int8._linear import export, ln_linear
from tests.int8.test_deploy import AVX2


def test_int8_layer_codes_are_the_fake_quant_grid() -> None:
    model, _ = ln_linear(8)
    spec = int8_layers(model)["1"]
    layer = model[1]
    wfq, afq = layer.weight_fake_quant, getattr(layer, INPUT_FQ)
    deq = torch.from_numpy(spec.w_codes.astype(np.float32) * spec.w_scale[:, None])
    torch.testing.assert_close(deq, wfq(layer.weight.detach()), rtol=0, atol=1e-7)
    assert spec.a_scale == pytest.approx(float(afq.scale))
    assert spec.a_zero_point == int(afq.zero_point)
    assert int(np.abs(spec.w_codes).max()) == 127


@pytest.mark.parametrize(("bits", "safe"), [(8, False), (7, True), (4, True)])
def test_only_weights_past_seven_bits_can_saturate(bits: int, safe: bool) -> None:
    model, _ = ln_linear(bits)
    report = saturation_report(model)
    assert report.safe is safe
    assert list(report.layers) == ["1"]
    assert ("saturation-free" in report.summary()) is safe


def test_shipped_recipes_plan_risk() -> None:
    def risky(name: str) -> list[str]:
        return plan_risk(quant_state(prepare_qat(make_tiny_sam2_like(), name)).plans)

    assert risky("w8a8") == []
    assert risky("w8a8_fidelity") == []
    assert risky("w8_weight_only") == []  # no int8 kernel without input quantization
    vnni = risky("w8a8_vnni")
    assert vnni
    assert all(".trunk." in n or ".neck." in n for n in vnni)


@pytest.mark.parametrize("key", sorted(shipped_recipes()))
def test_every_shipped_recipe_runs_with_the_default_target_unless_named_vnni(tiny_sam2, key: str) -> None:  # type: ignore[no-untyped-def]
    """`sam2-quant run --recipe NAME` exports for every CPU by default: a shipped recipe it would refuse is
    a defect, unless its name says it is for VNNI CPUs only (and then it must be refused)."""
    qmodel = prepare_qat(tiny_sam2, key)
    if key.endswith("_vnni"):
        with pytest.raises(ExportError, match="--target-cpu vnni"):
            check_recipe_target(qmodel, "any")
    else:
        check_recipe_target(qmodel, "any")


def test_shipped_w8a8_is_saturation_free_after_calibration() -> None:
    x = tiny_input(4)
    for name, safe in (("w8a8", True), ("w8a8_vnni", False)):
        frozen = freeze(calibrate(prepare_qat(make_tiny_sam2_like(), name), forward_loop=lambda m: m(x)))
        assert saturation_report(frozen).safe is safe, name


def test_export_refuses_a_risky_model_for_any_cpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, x = ln_linear(8)
    with pytest.raises(ExportError, match=r"without VNNI.*Fix: use a recipe") as e:
        export(model, x, tmp_path / "m.onnx", target_cpu="any")
    assert "--target-cpu vnni" in str(e.value)
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ConfigError, match="target_cpu"):
        export(model, x, tmp_path / "m.onnx", target_cpu="avx512")


def test_export_for_vnni_warns_and_says_so_in_the_file(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    model, x = ln_linear(8)
    with caplog.at_level(logging.WARNING):
        path = export(model, x, tmp_path / "m.onnx", target_cpu="vnni")
    assert "right only on CPUs with AVX512-VNNI" in caplog.text
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["sam2_quant.target_cpu"] == "vnni"
    assert "can saturate" in meta["sam2_quant.int8_saturation"]
    safe, x7 = ln_linear(7)
    meta = {
        p.key: p.value for p in onnx.load(str(export(safe, x7, tmp_path / "s.onnx", "any"))).metadata_props
    }
    assert meta["sam2_quant.target_cpu"] == "any"
    assert "saturation-free" in meta["sam2_quant.int8_saturation"]


@pytest.mark.slow
def test_bundle_manifest_records_the_target(tiny_sam2, photos, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    q = prepare_qat(tiny_sam2, "w8a8_vnni")
    calibrate(q, photos[:1], image_size=256, progress=False)
    frozen = freeze(q)
    with pytest.raises(ExportError, match="without VNNI"):
        export_bundle(frozen, tmp_path / "any", image_size=256)
    assert not (tmp_path / "any").exists()  # nothing half-written
    manifest = export_bundle(frozen, tmp_path / "vnni", image_size=256, target_cpu="vnni")
    assert manifest["target_cpu"] == "vnni"
    assert not manifest["int8_saturation"]["safe"]
    on_disk = json.loads((tmp_path / "vnni" / "manifest.json").read_text())
    assert on_disk["int8_saturation"]["risky_layers"] == manifest["int8_saturation"]["risky_layers"]
    # each file says whether it holds a risky layer: the encoder does, the float decoder does not
    meta = {
        g: {p.key: p.value for p in onnx.load(str(tmp_path / "vnni" / f"{g}.onnx")).metadata_props}
        for g in ("encoder", "decoder")
    }
    assert meta["encoder"][SAFE_KEY] == "false"
    assert meta["decoder"][SAFE_KEY] == "true"
    assert "can saturate" in meta["encoder"][NOTE_KEY]  # and the summary is the graph's own, not the model's
    assert "nothing can saturate" in meta["decoder"][NOTE_KEY]
    # deployed on a CPU whose kernels saturate (the probe's answer stood in for: any host runs this check),
    # `infer` refuses the file with the fix instead of writing a wrong mask
    monkeypatch.setattr(deploy, "host_int8_path", lambda: AVX2)
    argv = ["infer", "--onnx-dir", str(tmp_path / "vnni"), "--image", str(bundled_images()[0])]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--point", "100,100", "--out", str(tmp_path / "mask")]) == 2
    assert "target_cpu='vnni'" in caplog.text
    assert "--target-cpu any" in caplog.text
    assert not list(tmp_path.glob("mask*"))
