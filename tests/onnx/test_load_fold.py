"""Weight-only conv weights as Cast -> Mul: same bytes, same outputs, float weights once a session loads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from sam2_quant_plugin.onnx import make_session, quant_ranges, weight_bytes
from sam2_quant_plugin.onnx.audit import optimized_op_histogram
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.onnx.fp16 import fold_constant_weights
from sam2_quant_plugin.onnx.load_fold import fold_at_load
from tests.onnx._models import example, frozen, w8a8_recipe

pytestmark = pytest.mark.onnx


def _export(model: torch.nn.Module, path, **kw):  # type: ignore[no-untyped-def]
    return export_module(model, (example(),), path, input_names=("x",), output_names=("y",), **kw)


def _weight_producer(proto: onnx.ModelProto, op: str) -> list[str | None]:
    """For each node of type ``op``: the op type producing its weight (None: an initializer)."""
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    return [producers.get(n.input[1]) for n in proto.graph.node if n.op_type == op]


@pytest.fixture(scope="module")
def weight_only_stem() -> torch.nn.Module:
    return frozen(w8a8_recipe(7, conv_inputs=False))  # 7-bit: right on every CPU


def test_weight_only_conv_is_cast_mul_and_quantized_inputs_keep_dequantize(
    weight_only_stem, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    proto = onnx.load(str(_export(weight_only_stem, tmp_path / "w.onnx")))
    assert _weight_producer(proto, "Conv") == ["Mul"]
    assert set(_weight_producer(proto, "MatMul")) == {"DequantizeLinear"}  # W8A8 Linears: integer kernels
    # the stored codes are the same int8 tensor; the plan still lists the conv's weight quantizer
    assert weight_bytes(proto)["stem"] == 16 * 3 * 4 * 4
    assert ("stem", "weight") in quant_ranges(proto)

    qdq = onnx.load(str(_export(frozen(w8a8_recipe(7, conv_inputs=True)), tmp_path / "q.onnx")))
    assert _weight_producer(qdq, "Conv") == ["DequantizeLinear"]  # its input is quantized: QLinearConv


def test_onnxruntime_folds_the_weight_at_load_and_matches_torch(weight_only_stem, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _export(weight_only_stem, tmp_path / "w.onnx")
    ops = optimized_op_histogram(path, tmp_path / "opt.onnx")
    optimized = onnx.load(str(tmp_path / "opt.onnx"))
    inits = {t.name for t in optimized.graph.initializer}
    convs = [n for n in optimized.graph.node if n.op_type == "Conv"]
    assert convs, ops
    assert all(n.input[1] in inits for n in convs), ops  # a constant weight: nothing runs per call
    assert not [n.name for n in optimized.graph.node if n.name.startswith("/stem/weight_fake_quant")], ops
    x = example()
    with torch.no_grad():
        ref = weight_only_stem(x).numpy()
    for level in ("disable", "all"):
        out = make_session(path, optimization=level).run(None, {"x": x.numpy()})[0]
        assert float(np.abs(out - ref).max()) < 1e-4


def _dq_conv_graph(zp: np.ndarray) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    codes = rng.integers(-100, 100, size=(4, 2, 3, 3)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, size=4).astype(np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["w"], "/conv/weight_fake_quant/DQ", axis=0),
        helper.make_node("Conv", ["x", "w"], ["y"], "/conv/Conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(v, n) for v, n in ((codes, "c"), (scale, "s"), (zp, "z"))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _Info:
    layer, kind = "conv", "weight"


@pytest.mark.parametrize("zp", [np.zeros(4, np.int8), np.array([0, 3, -5, 7], np.int8)])
def test_the_weight_is_exactly_what_dequantize_computes(zp) -> None:  # type: ignore[no-untyped-def]
    reference = _dq_conv_graph(zp)
    expected = reference.__deepcopy__()
    assert fold_constant_weights(expected) == 1
    folded = reference.__deepcopy__()
    assert fold_at_load(folded, {"/conv/weight_fake_quant": _Info()}) == 1  # type: ignore[dict-item]
    ops = [n.op_type for n in folded.graph.node]
    assert ops == (["Cast", "Mul", "Conv"] if not zp.any() else ["Cast", "Sub", "Mul", "Conv"])
    onnx.checker.check_model(folded, full_check=True)
    assert fold_constant_weights(folded) == len(ops) - 1
    want = {t.name: numpy_helper.to_array(t) for t in expected.graph.initializer}["w"]
    got = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}["w"]
    np.testing.assert_array_equal(got, want)  # bit-identical float weights


def test_layers_outside_the_plan_are_left_alone() -> None:
    proto = _dq_conv_graph(np.zeros(4, np.int8))
    assert fold_at_load(proto, {}) == 0
    assert [n.op_type for n in proto.graph.node] == ["DequantizeLinear", "Conv"]
