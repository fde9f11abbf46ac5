"""Tiny SAM 2 (seeded random init, 256 px) through ONNX: float, W8A8 and memory attention (slow)."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.api import freeze, prepare_qat, quant_state
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.onnx import make_session, quant_ranges
from sam2_quant_plugin.onnx.parity import check_parity
from sam2_quant_plugin.sam2 import decode, encode, to_model_input
from sam2_quant_plugin.sam2.export import export_decoder, export_image_encoder, export_memory_attention
from sam2_quant_plugin.sam2.graphs import MEMORY_INPUTS, memory_example
from sam2_quant_plugin.sam2.parity import pipeline_parity
from sam2_quant_plugin.sam2.rope import patch_real_rope

pytestmark = [pytest.mark.slow, pytest.mark.onnx]
S = 256


@pytest.fixture(scope="module")
def w8a8(tiny_sam2, photos) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    q = prepare_qat(tiny_sam2, "w8a8")
    calibrate(q, photos[:1], image_size=S, progress=False)
    return freeze(q)


def test_float_encoder_decoder_match_torch(tiny_sam2, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    enc = export_image_encoder(tiny_sam2, tmp_path / "enc.onnx", image_size=S)
    dec = export_decoder(tiny_sam2, tmp_path / "dec.onnx", image_size=S)
    for path in (enc, dec):
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    r = pipeline_parity(tiny_sam2, enc, dec, photos[:1], image_size=S, points_per_side=3)
    assert r["embed_max_abs"] < 1e-3, r
    assert r["mask_iou"] > 0.999, r
    check_parity(r)
    # boxes are two points labelled 2 and 3; the number of prompt points is a dynamic axis
    with torch.no_grad():
        feats = encode(tiny_sam2, to_model_input(photos[:1], S))
    coords = torch.tensor([[[30.0, 40.0], [200.0, 220.0], [120.0, 128.0]]])
    labels = torch.tensor([[2, 3, 1]], dtype=torch.int32)
    with torch.no_grad():
        ref = decode(tiny_sam2, feats, points=coords, labels=labels)["low_res_masks"].numpy()
    feed = {
        "image_embed": feats["image_embed"].numpy(),
        "point_coords": coords.numpy(),
        "point_labels": labels.numpy(),
    }
    feed |= {f"high_res_feats_{i}": f.numpy() for i, f in enumerate(feats["high_res_feats"])}
    got = make_session(dec).run(None, feed)[0]
    assert np.abs(got - ref).max() < 1e-3


def test_w8a8_ranges_fusion_and_parity(w8a8, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    enc = export_image_encoder(w8a8, tmp_path / "enc.onnx", image_size=S)
    dec = export_decoder(w8a8, tmp_path / "dec.onnx", image_size=S)
    ranges = quant_ranges(onnx.load(str(enc)))
    plans = quant_state(w8a8).plans
    # every weight; inputs of the 51 Linears only (the shipped w8a8 keeps Conv2d inputs float)
    assert (
        len(ranges)
        == 56 + 51
        == sum((p.weight is not None) + (p.activation is not None) for p in plans.values())
    )
    for name, plan in plans.items():
        assert ranges[(name, "weight")].bits == plan.weight.bits
        if plan.activation is None:
            assert (name, "activation") not in ranges, name
        else:
            assert ranges[(name, "activation")].bits == plan.activation.bits
    opt = tmp_path / "enc.opt.onnx"
    make_session(enc, optimized_model_path=opt)
    ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    assert ops["MatMulIntegerToFloat"] == 51, ops  # every Linear on an int8 kernel
    assert not ops["Gemm"], ops
    # Random-init tiny SAM 2 flips codes chaotically: its own fake-quant model moves by cosine ~1e-4 under
    # a 1e-6 input perturbation, so parity is bounded by that, not by the export.
    for optimization in ("disable", "all"):
        r = pipeline_parity(
            w8a8, enc, dec, photos[:1], image_size=S, points_per_side=3, optimization=optimization
        )
        assert r["embed_cosine"] > 0.999, r
        assert r["mask_iou"] > 0.98, r


def test_memory_attention_exports_with_real_rope(tiny_sam2, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One file for every frame of a video: any number of memory frames and of object-pointer tokens
    (0 included), against SAM 2's own complex-RoPE memory attention on the concatenated memory."""
    model = copy.deepcopy(tiny_sam2)
    assert patch_real_rope(model) > 0
    path = export_memory_attention(model, tmp_path / "mem.onnx", image_size=S, n_frames=2)
    sess = make_session(path, optimization="disable")
    for n_frames, n_ptr in ((2, 8), (3, 0), (1, 4), (7, 64)):  # both lengths are dynamic axes
        inputs = memory_example(model, S, n_frames, n_ptr)
        with torch.no_grad():
            ref = tiny_sam2.memory_attention(
                curr=[inputs[0]],
                curr_pos=[inputs[1]],
                memory=torch.cat([inputs[2], inputs[4]]),
                memory_pos=torch.cat([inputs[3], inputs[5]]),
                num_obj_ptr_tokens=n_ptr,
            ).numpy()
        out = sess.run(None, {k: v.numpy() for k, v in zip(MEMORY_INPUTS, inputs)})[0]
        assert np.abs(out - ref).max() < 1e-3, (n_frames, n_ptr)
