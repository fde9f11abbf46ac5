"""fp16 graphs: float and weight-only (MatMulNBits, the CUDA EP form) convert; activation-quantized refuse."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.errors import ExportError
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.onnx.fp16 import to_fp16
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, weight_spec
from tests.onnx._models import TinyNet, example, frozen, w8a8_recipe

pytestmark = pytest.mark.onnx

WEIGHT_ONLY = Recipe(
    name="tiny-w-only",
    rules=tuple(
        LayerRule(match=n, weight=weight_spec(bits=b, observer="mse"))
        for n, b in {"stem": 8, "fc1": 8, "fc2": 4, "head": 4}.items()
    ),
    targets=("",),
)


def _export(model: torch.nn.Module, path, **kw):  # type: ignore[no-untyped-def]
    return export_module(model, (example(),), path, input_names=("x",), output_names=("y",), **kw)


def _run(path) -> np.ndarray:  # type: ignore[no-untyped-def]
    return make_session(path).run(None, {"x": example().numpy()})[0]


def test_weight_only_matmulnbits_graph_converts_and_matches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = frozen(WEIGHT_ONLY)
    path = _export(model, tmp_path / "w.onnx", weight_format="matmulnbits")
    half = to_fp16(path, tmp_path / "w_fp16.onnx")
    proto = onnx.load(str(half))
    inits = {t.name: t for t in proto.graph.initializer}
    nbits = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 3
    # the conv's int8 weight + DequantizeLinear became an fp16 initializer: no DQ/Cast pair runs per call
    assert not [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    float16 = onnx.load(str(to_fp16(_export(TinyNet().eval(), tmp_path / "f.onnx"), tmp_path / "f16.onnx")))
    ops = sorted(n.op_type for n in proto.graph.node)
    assert ops == sorted("MatMulNBits" if n.op_type == "MatMul" else n.op_type for n in float16.graph.node)
    for n in nbits:  # fp16 block scales, as onnxruntime's CUDA kernels want
        assert inits[n.input[2]].data_type == onnx.TensorProto.FLOAT16
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O kept
    ref, got = _run(path), _run(half)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() < 2e-3 * np.abs(ref).max()
    with torch.no_grad():
        torch_out = model(example()).numpy()
    assert np.abs(got - torch_out).max() < 2e-3 * np.abs(torch_out).max()


def test_float_graph_converts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _export(TinyNet().eval(), tmp_path / "f.onnx")
    half = to_fp16(path, tmp_path / "f16.onnx")
    ref, got = _run(path), _run(half)
    assert np.abs(got - ref).max() < 2e-3 * np.abs(ref).max()


def test_activation_quantized_graph_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = frozen(w8a8_recipe(7))  # 7-bit weights: right on every CPU (target_cpu any)
    path = _export(model, tmp_path / "q.onnx", weight_format="int8")
    with pytest.raises(ExportError, match="quantizes activations"):
        to_fp16(path, tmp_path / "q16.onnx")
    assert not (tmp_path / "q16.onnx").exists()
    # the bundle exporter refuses before writing anything
    with pytest.raises(ExportError, match="--fp16 needs a float or weight-only model"):
        export_bundle(model, tmp_path / "bundle", image_size=64, fp16=True)
    assert not (tmp_path / "bundle").exists()
