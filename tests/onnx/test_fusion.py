"""onnxruntime's CPU EP runs the exported W8A8 graph on int8 kernels, and still matches PyTorch (fast)."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.int8 import emulated, host_int8_path, saturation_report
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
    model = frozen(w8a8_recipe(weight_bits, conv_inputs=False))  # Linears only: the emulator's scope
    path = export_module(
        model, (example(),), tmp_path / "m.onnx", input_names=("x",), output_names=("y",), target_cpu="vnni"
    )
    opt = tmp_path / "m.opt.onnx"
    sess = make_session(path, optimization="all", optimized_model_path=opt)
    ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    assert ops["MatMulIntegerToFloat"] == 3, ops  # fc1, fc2, head: no float Gemm/MatMul left for them
    assert not ops["Gemm"]
    assert not ops["QLinearConv"]
    x = example()
    with torch.no_grad():
        ref = model(x).numpy()
        # what this CPU's int8 kernels compute (saturating pairs on AVX2-class CPUs, exact with VNNI)
        host = emulated(model, host_int8_path().onnxruntime, only_risky=False)(x).numpy()
    fused = sess.run(None, {"x": x.numpy()})[0]
    simulated = make_session(path, optimization="disable").run(None, {"x": x.numpy()})[0]
    scale = np.abs(ref).max()
    # Q/DQ as written: torch's kernel multiplies by 1/scale where QuantizeLinear divides, so a rare tie
    # lands one code apart; every other output matches to float rounding
    assert np.abs(simulated - ref).max() < 1e-2 * scale
    assert np.median(np.abs(simulated - ref)) < 1e-6 * scale
    assert np.abs(fused - host).max() < 1e-3 * scale
    if saturation_report(model).safe:  # then every x86 CPU computes the fake-quant numbers
        assert np.abs(fused - ref).max() < 1e-2 * scale


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


def test_a_conv_with_quantized_input_and_output_runs_int8_and_is_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The stem's input Q and fc1's input Q around it make onnxruntime build a QLinearConv (a u8 x s8
    kernel too): the saturation verdict must count it, 8-bit weights refused for any CPU, 7-bit passed."""
    for bits, safe in ((8, False), (7, True)):
        model = frozen(w8a8_recipe(bits))
        report = saturation_report(model)
        assert "stem" in report.layers
        assert ("stem" in report.risky_layers) is not safe
    path = export_module(
        model, (example(),), tmp_path / "m.onnx", input_names=("x",), output_names=("y",), target_cpu="any"
    )
    opt = tmp_path / "m.opt.onnx"
    make_session(path, optimized_model_path=opt)
    assert Counter(n.op_type for n in onnx.load(str(opt)).graph.node)["QLinearConv"] == 1


class _Clones(torch.nn.Module):
    """Two deep copies of one block, as SAM 2 builds memory attention and the memory encoder's fuser: the
    exporter stores their identical biases once, which must not cost the int8 fusion."""

    def __init__(self) -> None:
        super().__init__()
        block = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
        self.layers = torch.nn.ModuleList(copy.deepcopy(block) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


def test_cloned_layers_with_shared_biases_still_fuse(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sam2_quant_plugin import (
        LayerRule,
        Recipe,
        activation_spec,
        calibrate,
        freeze,
        prepare_qat,
        weight_spec,
    )

    rule = LayerRule("<default>", weight=weight_spec(bits=7), activation=activation_spec(bits=8))
    q = prepare_qat(_Clones().eval(), Recipe(name="clones", targets=("",), default=rule))
    x = torch.randn(1, 64, 16)  # static rank-3 shape: the case onnxruntime's MatMulAddFusion takes to Gemm
    calibrate(q, forward_loop=lambda m: m(x), progress=False)
    model = freeze(q)
    path = export_module(model, (x,), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    opt = tmp_path / "m.opt.onnx"
    sess = make_session(path, optimization="all", optimized_model_path=opt)
    ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    assert ops["MatMulIntegerToFloat"] == 4, ops
    assert not ops["Gemm"], ops
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(sess.run(None, {"x": x.numpy()})[0] - ref).max() < 1e-2 * np.abs(ref).max()
