"""The ``ort-rtn-int4-g32`` row built on the real tiny SAM 2 (random init, 256 px): onnxruntime's RTN
MatMulNBits quantizer on the fp16 float encoder, run in onnxruntime inside SAM 2 (slow)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from sam2_quant_plugin.eval.baselines.base import BuildContext
from sam2_quant_plugin.eval.baselines.registry import make_methods
from sam2_quant_plugin.eval.metrics import cosine
from sam2_quant_plugin.sam2 import encode
from sam2_quant_plugin.sam2.ort_modules import OrtImageEncoder

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


def test_ort_rtn_row_builds_and_runs_in_sam2(
    tiny_sam2: torch.nn.Module, photos: list, photo_batch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    (method,) = make_methods(["ort-rtn-int4-g32"])
    built = method.make_student(BuildContext(tiny_sam2, photos, 256, tmp_path))
    assert built.runtime == "onnxruntime"
    assert built.a_bits is None
    assert isinstance(built.model.image_encoder, OrtImageEncoder)
    proto = onnx.load(str(built.onnx_path))
    nbits = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 51  # every Hiera Linear
    assert {a.i for n in nbits for a in n.attribute if a.name in ("bits", "block_size")} == {4, 32}
    assert 4.0 < built.avg_w_bits < 4.5  # 4-bit Linears, fp16 convs (a few percent of the weights)
    assert built.size_bytes < 0.2 * (tmp_path / "float_encoder.onnx").stat().st_size
    x = photo_batch[:1]
    with torch.no_grad():
        ref, got = encode(tiny_sam2, x), encode(built.model, x)
    c = cosine(got["image_embed"], ref["image_embed"])
    assert 0.9 < c < 0.99999, c  # 4-bit weights move the embedding, but not far


def test_per_group_recipe_row_deploys_as_block32_matmulnbits(
    tiny_sam2: torch.nn.Module, photos: list, photo_batch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Our ``w4_g32`` deployed twin: the same kernels as the RTN row, our own (MSE-clipped) group scales."""
    from sam2_quant_plugin.eval.baselines.recipe_onnx import RecipeOnnxMethod

    built = RecipeOnnxMethod("w4g32-ort", "w4_g32").make_student(
        BuildContext(tiny_sam2, photos, 256, tmp_path)
    )
    proto = onnx.load(str(built.onnx_path))
    nbits = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 51
    assert {a.i for n in nbits for a in n.attribute if a.name in ("bits", "block_size")} == {4, 32}
    x = photo_batch[:1]
    with torch.no_grad():
        ref, got = encode(tiny_sam2, x), encode(built.model, x)
    assert 0.9 < cosine(got["image_embed"], ref["image_embed"]) < 0.99999


def test_bench_fp16_methods_run_in_eval(
    tiny_sam2: torch.nn.Module, photos: list, photo_batch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """bench's fp16 bundles are eval rows too (one registry): the fp16 float encoder, and our group-32
    recipe as fp16 MatMulNBits (the CUDA EP form of ``sam2-quant bench``'s variant of the same name)."""
    half, ours = make_methods(["float-fp16", "ours-w4-g32-nbits-fp16-ort"])
    ctx = BuildContext(tiny_sam2, photos, 256, tmp_path)
    x = photo_batch[:1]
    with torch.no_grad():
        ref = encode(tiny_sam2, x)["image_embed"]
        built = half.make_student(ctx)
        assert built.onnx_path is not None
        assert built.onnx_path.name == "float_encoder_fp16.onnx"
        assert cosine(encode(built.model, x)["image_embed"], ref) > 0.9999
        built = ours.make_student(ctx)
        assert built.onnx_path is not None
        assert built.onnx_path.name.endswith("_fp16.onnx")
        proto = onnx.load(str(built.onnx_path))
        assert sum(n.op_type == "MatMulNBits" for n in proto.graph.node) == 51
        assert 0.9 < cosine(encode(built.model, x)["image_embed"], ref) < 0.99999
