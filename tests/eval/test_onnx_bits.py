"""eval.baselines.onnx_encoder.onnx_weight_bits on hand-built graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sam2_quant_plugin.eval.baselines.onnx_encoder import onnx_weight_bits


def _save(nodes: list, inits: list, path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def test_float_and_int8_dq_weights(tmp_path: Path) -> None:
    w_float = numpy_helper.from_array(np.zeros((4, 4), np.float32), "wf")  # 16 params at 32 bits
    w_q = numpy_helper.from_array(np.zeros((4, 12), np.int8), "wq")  # 48 params at 8 bits
    scale = numpy_helper.from_array(np.array(1.0, np.float32), "s")
    nodes = [
        helper.make_node("MatMul", ["x", "wf"], ["h"]),
        helper.make_node("DequantizeLinear", ["wq", "s"], ["wdq"]),
        helper.make_node("MatMul", ["h", "wdq"], ["y"]),
    ]
    bits = onnx_weight_bits(_save(nodes, [w_float, w_q, scale], tmp_path / "m.onnx"))
    assert bits == pytest.approx((16 * 32 + 48 * 8) / 64)


def test_matmulnbits(tmp_path: Path) -> None:
    node = helper.make_node("MatMulNBits", ["x", "b", "s"], ["y"], domain="com.microsoft", K=4, N=8, bits=4)
    inits = [
        numpy_helper.from_array(np.zeros((8, 1, 2), np.uint8), "b"),
        numpy_helper.from_array(np.ones(8, np.float32), "s"),
    ]
    assert onnx_weight_bits(_save([node], inits, tmp_path / "n.onnx")) == 4.0


def test_dynamic_quant_matmulinteger_weights(tmp_path: Path) -> None:
    """quantize_dynamic's graphs feed int8 weights straight into MatMulInteger (no DequantizeLinear)."""
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "wq", "xz"], ["acc"]),
        helper.make_node("MatMul", ["acc_f", "wf"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros((4, 8), np.int8), "wq"),  # 32 params at 8 bits
        numpy_helper.from_array(np.zeros((8, 4), np.float32), "wf"),  # 32 params at 32 bits
    ]
    assert onnx_weight_bits(_save(nodes, inits, tmp_path / "d.onnx")) == pytest.approx(20.0)
