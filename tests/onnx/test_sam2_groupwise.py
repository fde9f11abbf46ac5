"""Tiny SAM 2 (seeded random init, 256 px) with the shipped w4_g32 recipes: MatMulNBits ONNX, GPTQ (slow)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from sam2_quant_plugin.api import freeze, prepare_qat, quant_state
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.onnx import quant_ranges
from sam2_quant_plugin.onnx.fp16 import to_fp16
from sam2_quant_plugin.sam2.export import export_decoder, export_image_encoder
from sam2_quant_plugin.sam2.parity import pipeline_parity

pytestmark = [pytest.mark.slow, pytest.mark.onnx]
S = 256


def test_w4_g32_encoder_is_51_block32_matmulnbits_with_real_block_scales(tiny_sam2, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = prepare_qat(tiny_sam2, "w4_g32")
    calibrate(q, photos[:1], image_size=S, progress=False)
    model = freeze(q)
    enc = export_image_encoder(model, tmp_path / "enc.onnx", image_size=S, weight_format="matmulnbits")
    dec = export_decoder(model, tmp_path / "dec.onnx", image_size=S)
    proto = onnx.load(str(enc))
    nodes = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    attrs = Counter((a.name, a.i) for n in nodes for a in n.attribute if a.name in ("bits", "block_size"))
    assert len(nodes) == 51
    assert attrs[("bits", 4)] == 51
    assert attrs[("block_size", 32)] == 51
    plans = quant_state(model).plans
    ranges = quant_ranges(proto)
    assert all(ranges[(n, "weight")].bits == p.weight.bits for n, p in plans.items())
    inits = {t.name: t for t in proto.graph.initializer}
    scales = numpy_helper.to_array(inits[nodes[0].input[2]])
    k = next(a.i for a in nodes[0].attribute if a.name == "K")
    per_row = scales.reshape(-1, k // 32)
    assert (per_row.std(axis=1) > 0).all()  # every channel's blocks hold their own scales
    r = pipeline_parity(model, enc, dec, photos[:1], image_size=S, points_per_side=3)
    assert r["embed_cosine"] > 0.9999, r
    assert r["mask_iou"] > 0.99, r
    half = onnx.load(str(to_fp16(enc, tmp_path / "enc_fp16.onnx")))
    assert Counter(n.op_type for n in half.graph.node)["MatMulNBits"] == 51
    np.testing.assert_array_equal(  # the fp16 graph keeps the same block scales (rounded to fp16)
        numpy_helper.to_array({t.name: t for t in half.graph.initializer}[nodes[0].input[2]]),
        scales.astype(np.float16),
    )


def test_gptq_rounding_beats_nearest_on_a_photo_it_did_not_see(tiny_sam2, photos, photo_batch) -> None:  # type: ignore[no-untyped-def]
    """w4_g32 vs w4_g32_gptq: same grid and file size; GPTQ fitted on photo 0, scored on photo 1."""
    from sam2_quant_plugin.eval.metrics import cosine
    from sam2_quant_plugin.sam2 import encode

    held_out = photo_batch[1:2]
    with torch.no_grad():
        ref = encode(tiny_sam2, held_out)["image_embed"]
    scores = {}
    for name in ("w4_g32", "w4_g32_gptq"):
        q = prepare_qat(tiny_sam2, name)
        calibrate(q, photos[:1], image_size=S, progress=False)
        with torch.no_grad():
            scores[name] = cosine(encode(freeze(q), held_out)["image_embed"], ref)
    assert scores["w4_g32_gptq"] > scores["w4_g32"], scores
    assert 1 - scores["w4_g32_gptq"] < 0.5 * (1 - scores["w4_g32"]), scores  # at least half the distance
