"""Quantized attention MatMuls through ONNX: plan metadata, onnxruntime integer fusion and parity."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.api import ATTN_KINDS, freeze, prepare_qat, quantizers
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.onnx import make_session, quant_ranges
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.recipe import SCHEMA_VERSION, Recipe, load_recipe
from tests._utils.tiny_attention import ATTN_MODULES, make_tiny_attention, tiny_tokens

INTEGER_MATMULS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger")


def _integer_matmuls(path, tmp_path) -> int:  # type: ignore[no-untyped-def]
    opt = tmp_path / "opt.onnx"
    make_session(path, optimized_model_path=opt)
    ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    return sum(ops[o] for o in INTEGER_MATMULS)


def _frozen(attention: bool) -> torch.nn.Module:
    d: dict = {
        "version": SCHEMA_VERSION,
        "name": "t",
        "rules": [
            {"match": "type:Linear", "weight": {"bits": 7}, "activation": {"bits": 8, "observer": "minmax"}}
        ],
    }
    if attention:
        d["attention"] = [{"match": f"type:{t}"} for t in sorted(set(ATTN_MODULES.values()))]
    q = prepare_qat(make_tiny_attention(), Recipe.from_dict(d))
    return freeze(calibrate(q, forward_loop=lambda m: m(tiny_tokens())))


def _export(model: torch.nn.Module, path):  # type: ignore[no-untyped-def]
    ex = (tiny_tokens(),)
    return export_module(model, ex, path, input_names=("x",), output_names=("y",), target_cpu="any")


def test_tiny_attention_exports_fuses_and_matches_onnxruntime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frozen, plain = _frozen(attention=True), _frozen(attention=False)
    path = _export(frozen, tmp_path / "attn.onnx")
    ranges = quant_ranges(onnx.load(str(path)))
    for name in ATTN_MODULES:
        for kind in ATTN_KINDS:
            want = quantizers(frozen)[(name, kind)]
            got = ranges[(name, kind)]
            assert (got.bits, got.qmin, got.qmax, got.signed) == (
                want.bits,
                want.qmin,
                want.qmax,
                want.signed,
            )
    # every quantized attention adds two integer MatMuls over the same model with float attention
    extra = _integer_matmuls(path, tmp_path) - _integer_matmuls(_export(plain, tmp_path / "p.onnx"), tmp_path)
    assert extra == 2 * len(ATTN_MODULES)
    x = tiny_tokens(seed=7)
    with torch.no_grad():
        ref = frozen(x).numpy()
    for optimization in ("disable", "all"):
        got = make_session(path, optimization=optimization).run(None, {"x": x.numpy()})[0]
        assert np.abs(got - ref).max() < 1e-4, optimization


@pytest.mark.slow
@pytest.mark.onnx
def test_tiny_sam2_encoder_with_attention_matches_onnxruntime(tiny_sam2, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sam2_quant_plugin.int8.safety import saturation_report
    from sam2_quant_plugin.sam2.export import export_image_encoder
    from sam2_quant_plugin.sam2.parity import pipeline_parity

    S = 256
    r = load_recipe("w8a8_attn")
    q = prepare_qat(tiny_sam2, r)
    calibrate(q, photos[:1], image_size=S, progress=False)
    frozen = freeze(q)
    n_attn = sum(1 for (_, kind) in quantizers(frozen) if kind == "attn_q")
    assert n_attn == sum(type(m).__name__ == "MultiScaleAttention" for m in tiny_sam2.modules())
    report = saturation_report(frozen)
    assert report.safe, report.summary()
    enc = export_image_encoder(frozen, tmp_path / "enc.onnx", image_size=S, target_cpu="any")
    ranges = quant_ranges(onnx.load(str(enc)))
    assert sum(1 for (_, kind) in ranges if kind in ATTN_KINDS) == 4 * n_attn
    plain = dataclasses.replace(r, attention=())
    qp = prepare_qat(tiny_sam2, plain)
    calibrate(qp, photos[:1], image_size=S, progress=False)
    enc_plain = export_image_encoder(freeze(qp), tmp_path / "plain.onnx", image_size=S)
    extra = _integer_matmuls(enc, tmp_path) - _integer_matmuls(enc_plain, tmp_path)
    assert extra == 2 * n_attn
    res = pipeline_parity(frozen, enc, None, photos[:1], image_size=S)
    assert res["embed_cosine"] > 0.999, res
