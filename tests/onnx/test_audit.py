"""onnx.audit: op histograms and what one graph runs beyond another (MatMulNBits counted as MatMul)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sam2_quant_plugin.onnx.audit import audit_graphs, format_counts, matmulnbits_configs, op_histogram
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.onnx.fp16 import to_fp16
from sam2_quant_plugin.onnx.ort_rtn import ort_rtn_quantize
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, weight_spec
from tests.onnx._models import TinyNet, example, frozen

pytestmark = pytest.mark.onnx

#: weight-only, like the cuda_int4_fp16 profile: 8-bit conv stem, 8- and 4-bit Linears
WEIGHT_ONLY = Recipe(
    name="tiny-w-only",
    rules=tuple(
        LayerRule(match=n, weight=weight_spec(bits=b))
        for n, b in {"stem": 8, "fc1": 8, "fc2": 4, "head": 4}.items()
    ),
    targets=("",),
)


def _model(nodes: list, inits: list) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _float_ref() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="/fc1/MatMul"),
        helper.make_node("Relu", ["h"], ["r"], name="/act/Relu"),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="/fc2/MatMul"),
    ]
    return _model(nodes, [w])


def _nbits(name: str, a: str, out: str, *, bits: int = 4, zero_points: bool = False) -> onnx.NodeProto:
    inputs = [a, f"{name}.b", f"{name}.s"] + ([f"{name}.zp"] if zero_points else [])
    return helper.make_node(
        "MatMulNBits", inputs, [out], name=name, domain="com.microsoft", K=64, N=64, bits=bits, block_size=32
    )


def _nbits_inits(name: str, dtype: type = np.float16) -> list:
    return [
        numpy_helper.from_array(np.zeros((64, 2, 16), np.uint8), f"{name}.b"),
        numpy_helper.from_array(np.ones(128, dtype), f"{name}.s"),
    ]


def test_matmul_swapped_for_matmulnbits_is_the_same_structure() -> None:
    nodes = [
        _nbits("/fc1/MatMulNBits", "x", "h"),
        helper.make_node("Relu", ["h"], ["r"], name="/act/Relu"),
        _nbits("/fc2/MatMulNBits", "r", "y", bits=8),
    ]
    model = _model(nodes, _nbits_inits("/fc1/MatMulNBits") + _nbits_inits("/fc2/MatMulNBits"))
    audit = audit_graphs(model, _float_ref())
    assert audit.same_structure
    assert audit.extra == audit.missing == {}
    assert audit.extra_nodes == []
    assert audit.ops == {"MatMulNBits": 2, "Relu": 1}
    assert audit.reference_ops == {"MatMul": 2, "Relu": 1}
    assert audit.matmulnbits == {"4-bit b32 float16": 1, "8-bit b32 float16": 1}
    assert audit.reference_matmulnbits == {}
    assert audit.to_dict()["same_structure"] is True


def test_extra_and_missing_nodes_are_counted_and_located() -> None:
    codes = numpy_helper.from_array(np.ones((64, 64), np.int8), "w_q")
    scale = numpy_helper.from_array(np.ones(64, np.float32), "w_s")
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w_dq"], name="/fc1/DequantizeLinear", axis=1),
        helper.make_node("Cast", ["w_dq"], ["w_h"], name="/fc1/Cast", to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["x", "w_h"], ["h"], name="/fc1/MatMul"),
        _nbits("/fc2/MatMulNBits", "h", "y", zero_points=True),  # the Relu is gone
    ]
    inits = [codes, scale, *_nbits_inits("/fc2/MatMulNBits", np.float32)]
    inits.append(numpy_helper.from_array(np.zeros(128, np.uint8), "/fc2/MatMulNBits.zp"))
    audit = audit_graphs(_model(nodes, inits), _float_ref())
    assert not audit.same_structure
    assert audit.extra == {"Cast": 1, "DequantizeLinear": 1}
    assert audit.missing == {"Relu": 1}
    assert audit.extra_nodes == [
        "DequantizeLinear /fc1/DequantizeLinear -> Cast",
        "Cast /fc1/Cast -> MatMul",
    ]
    assert audit.matmulnbits == {"4-bit b32 float32 zero-points": 1}
    assert format_counts(audit.extra) == "Cast +1, DequantizeLinear +1"
    assert format_counts(audit.missing, "-") == "Relu -1"
    assert format_counts({}) == "none"


def test_subgraph_nodes_are_counted() -> None:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["b"], name="/if/Identity")],
        "branch",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], name="/if", then_branch=branch, else_branch=branch)
    model = _model([node], [cond])
    assert op_histogram(model) == {"Identity": 2, "If": 1}
    assert audit_graphs(model, model).same_structure


def test_tiny_net_ours_vs_onnxruntime_rtn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On a miniature ViT block neither onnxruntime's RTN nor this package's weight-only fp16 export adds a
    node to the fp16 graph: the 8-bit conv stem's int8 weight + DequantizeLinear is folded into an fp16
    initializer by the fp16 conversion (Conv has no low-bit kernel; a DQ + Cast would run every call)."""

    def export(model, name, **kw):  # type: ignore[no-untyped-def]
        path = export_module(
            model, (example(),), tmp_path / f"{name}.onnx", input_names=("x",), output_names=("y",), **kw
        )
        return to_fp16(path, tmp_path / f"{name}_fp16.onnx")

    fp16 = export(TinyNet().eval(), "float")
    rtn = ort_rtn_quantize(fp16, tmp_path / "rtn.onnx")
    ours = export(frozen(WEIGHT_ONLY), "ours", weight_format="matmulnbits")
    ref = onnx.load(str(fp16))
    a_rtn = audit_graphs(onnx.load(str(rtn)), ref)
    assert a_rtn.same_structure, a_rtn
    assert a_rtn.matmulnbits == {"4-bit b32 float16": 3}
    a_ours = audit_graphs(onnx.load(str(ours)), ref)
    assert sum(a_ours.matmulnbits.values()) == 3
    assert a_ours.missing == {}
    assert a_ours.same_structure, a_ours.extra_nodes
    assert matmulnbits_configs(ref) == {}


def test_runtime_kernels_counts_what_onnxruntime_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """TinyNet with a weight-only conv stem, two W+A Linears and a weight-only head."""
    from sam2_quant_plugin.onnx.audit import format_kernels, runtime_kernels
    from sam2_quant_plugin.onnx.export import export_module
    from tests.onnx._models import example, frozen, mixed_recipe

    path = export_module(
        frozen(mixed_recipe()), (example(),), tmp_path / "m.onnx", input_names=("x",), output_names=("y",)
    )
    kernels = runtime_kernels(path)
    assert kernels == {"int8": 2, "nbits": 1, "float": 1, "dq_left": 0}, kernels
    assert format_kernels(kernels) == "int8 2, nbits 1, float 1"
