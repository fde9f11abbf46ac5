"""Repeated float constants are stored once (e.g. the RoPE tables every attention module of memory
attention folds in): smaller files, the same numbers on onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.dedupe import dedupe_constants
from sam2_quant_plugin.onnx.export import export_module


class _Table(nn.Module):
    """Like RoPE: a table derived from shapes only, identical in every copy of the module, which the tracer
    records as a constant in each module's scope."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.cos(torch.arange(64 * 32, dtype=torch.float32)).reshape(64, 32)  # not a buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.table + self.table.flip(0)


class _Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Table() for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def _float_bytes(model: onnx.ModelProto) -> int:
    tensors = list(model.graph.initializer)
    tensors += [
        a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
    ]
    return sum(numpy_helper.to_array(t).nbytes for t in tensors if t.data_type == TensorProto.FLOAT)


def test_exported_graph_keeps_one_copy_of_each_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _Stack().eval()
    x = torch.randn(64, 32)
    path = export_module(model, (x,), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    table_bytes = 64 * 32 * 4
    assert _float_bytes(onnx.load(str(path))) <= 2 * table_bytes  # the table and its flip, once each
    out = make_session(path).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_only_float_constants_are_merged_and_names_stay_valid() -> None:
    table = np.arange(2048, dtype=np.float32).reshape(64, 32)
    codes = np.ones((64, 64), dtype=np.int8)
    inits = [
        numpy_helper.from_array(table, "a"),
        numpy_helper.from_array(table.copy(), "b"),
        numpy_helper.from_array(codes, "q1"),
        numpy_helper.from_array(codes.copy(), "q2"),
    ]
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(table.copy(), "c"))
    nodes = [
        const,
        helper.make_node("Add", ["a", "b"], ["ab"]),
        helper.make_node("Add", ["ab", "c"], ["y"]),
        helper.make_node("Add", ["q1", "q2"], ["z"]),
    ]
    outs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 32]),
        helper.make_tensor_value_info("z", TensorProto.INT8, [64, 64]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [], outs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    saved = dedupe_constants(model)
    assert saved == 2 * table.nbytes  # "b" and the Constant node; the int8 pair is left alone
    assert [i.name for i in model.graph.initializer] == ["a", "q1", "q2"]
    assert not [n for n in model.graph.node if n.op_type == "Constant"]
    onnx.checker.check_model(model, full_check=True)
    y, z = make_session(model.SerializeToString()).run(None, {})
    np.testing.assert_array_equal(y, 3 * table)
    np.testing.assert_array_equal(z, 2 * codes)
    assert dedupe_constants(model) == 0  # nothing left to merge
