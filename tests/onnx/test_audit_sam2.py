"""The cuda_int4_fp16 encoder of the real tiny SAM 2 (random init, 256 px) against the fp16 float encoder
and against onnxruntime's own RTN MatMulNBits graph of it (slow)."""

from __future__ import annotations

import onnx
import pytest

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.cli.export_cmd import load_profile
from sam2_quant_plugin.onnx import to_fp16
from sam2_quant_plugin.onnx.audit import audit_graphs
from sam2_quant_plugin.onnx.ort_rtn import ort_rtn_quantize
from sam2_quant_plugin.sam2.export import export_image_encoder

pytestmark = [pytest.mark.slow, pytest.mark.onnx]
S = 256
LINEARS = 51  # Hiera-T: 12 blocks x (qkv, proj, 2 MLP) + 3 stage-transition projections


def test_cuda_profile_encoder_is_the_fp16_graph_with_matmulnbits(tiny_sam2, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fp16 = to_fp16(export_image_encoder(tiny_sam2, tmp_path / "f.onnx", image_size=S), tmp_path / "f16.onnx")
    ref = onnx.load(str(fp16))
    rtn = audit_graphs(onnx.load(str(ort_rtn_quantize(fp16, tmp_path / "rtn.onnx"))), ref)
    assert rtn.same_structure, rtn.extra_nodes
    assert rtn.matmulnbits == {"4-bit b32 float16": LINEARS}

    profile = load_profile("cuda_int4_fp16")
    q = prepare_qat(tiny_sam2, str(profile["recipe"]))
    calibrate(q, photos[:1], image_size=S, progress=False)
    path = export_image_encoder(
        freeze(q), tmp_path / "q.onnx", image_size=S, weight_format=str(profile["weight_format"])
    )
    ours = audit_graphs(onnx.load(str(to_fp16(path, tmp_path / "q16.onnx"))), ref)
    assert sum(ours.matmulnbits.values()) == LINEARS  # every Linear, like onnxruntime's quantizer
    assert all(cfg.endswith("b32 float16") for cfg in ours.matmulnbits)  # fp16 activations and scales
    assert ours.missing == {}
    # the fp16 conversion folds the Conv2d weights' int8 -> DequantizeLinear into fp16 initializers, so the
    # graph is the fp16 float graph with MatMul -> MatMulNBits and nothing added, as onnxruntime's is
    assert ours.same_structure, ours.extra_nodes
