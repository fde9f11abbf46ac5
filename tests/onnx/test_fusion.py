"""onnxruntime's CPU EP runs the exported W8A8 graph on int8 kernels, and still matches PyTorch (fast)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_module
from tests.onnx._models import example, frozen, w8a8_recipe

pytestmark = pytest.mark.onnx
INT8_KERNELS = {
    "MatMulIntegerToFloat",
    "QLinearMatMul",
    "MatMulInteger",
    "QGemm",
    "QLinearConv",
    "ConvInteger",
}


@pytest.mark.parametrize("weight_bits", [8, 7])
def test_w8a8_linears_fuse_into_int8_kernels(tmp_path, weight_bits) -> None:  # type: ignore[no-untyped-def]
    model = frozen(w8a8_recipe(weight_bits))
    path = export_module(model, (example(),), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    opt = tmp_path / "m.opt.onnx"
    sess = make_session(path, optimization="all", optimized_model_path=opt)
    ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    assert ops["MatMulIntegerToFloat"] == 3, ops  # fc1, fc2, head: no float Gemm/MatMul left for them
    assert not ops["Gemm"]
    x = example()
    with torch.no_grad():
        ref = model(x).numpy()
    fused = sess.run(None, {"x": x.numpy()})[0]
    simulated = make_session(path, optimization="disable").run(None, {"x": x.numpy()})[0]
    assert np.abs(simulated - ref).max() < 1e-5
    assert np.abs(fused - ref).max() < 1e-3 * np.abs(ref).max()


def test_float_graph_has_no_int8_kernels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.onnx._models import TinyNet

    model = TinyNet().eval()
    path = export_module(model, (example(),), tmp_path / "f.onnx", input_names=("x",), output_names=("y",))
    opt = tmp_path / "f.opt.onnx"
    sess = make_session(path, optimized_model_path=opt)
    assert not INT8_KERNELS & {n.op_type for n in onnx.load(str(opt)).graph.node}
    with torch.no_grad():
        ref = model(example()).numpy()
    assert np.abs(sess.run(None, {"x": example().numpy()})[0] - ref).max() < 1e-5
