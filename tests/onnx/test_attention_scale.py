"""The softmax scale moved onto q ahead of its quantizer (onnx/attention_scale.py): graph form, what
onnxruntime makes of it (no float Mul over the scores, a float query pool) and parity with torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin.onnx import export as export_mod
from sam2_quant_plugin.onnx import make_session
from tests._utils.pooled_attention import DIM, HEADS, export_pooled, frozen_pooled, pooled_tokens

#: Ops onnxruntime moves a QuantizeLinear over (its QDQ propagation), plus its NCHWc reorders.
DATA_MOVEMENT = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "ReorderInput", "ReorderOutput")


def _optimized(path, tmp_path) -> onnx.GraphProto:  # type: ignore[no-untyped-def]
    opt = tmp_path / f"{path.stem}.opt.onnx"
    make_session(path, optimized_model_path=opt)
    return onnx.load(str(opt)).graph


def _pool_reads_codes(graph: onnx.GraphProto) -> bool:
    """True when a MaxPool reads a QuantizeLinear's output through data movement only (a uint8 pool)."""
    producer = {o: n for n in graph.node for o in n.output}
    for pool in (n for n in graph.node if n.op_type == "MaxPool"):
        node = producer.get(pool.input[0])
        while node is not None and node.op_type in DATA_MOVEMENT:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "QuantizeLinear":
            return True
    return False


@pytest.mark.parametrize("bits", [8, 6])
def test_scale_moves_onto_q_and_onnxruntime_matches_torch(bits: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    frozen = frozen_pooled(bits)
    path = export_pooled(frozen, tmp_path / "attn.onnx")
    g = onnx.load(str(path)).graph
    qk = next(n for n in g.node if n.op_type == "MatMul" and "attn_q_fake_quant" in n.input[0])
    assert [n.op_type for n in g.node if qk.output[0] in n.input] == ["Softmax"]
    pre = next(n for n in g.node if n.name.endswith("attn_q_fake_quant/SoftmaxScale"))
    factor = float(onnx.numpy_helper.to_array(next(t for t in g.initializer if t.name == pre.input[1])))
    assert factor == pytest.approx(1 / np.sqrt(DIM // HEADS))
    x = pooled_tokens(seed=9)
    with torch.no_grad():
        ref = frozen(x).numpy()
    for optimization in ("disable", "all"):
        got = make_session(path, optimization=optimization).run(None, {"x": x.numpy()})[0]
        assert np.abs(got - ref).max() < 1e-4, (bits, optimization)


def test_no_float_scale_mul_and_a_float_query_pool(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    frozen = frozen_pooled(8)
    opt = _optimized(export_pooled(frozen, tmp_path / "folded.onnx"), tmp_path)
    integer = {"MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger"}
    products = {o for n in opt.node if n.op_type in integer for o in n.output}
    assert not [n.name for n in opt.node if n.op_type == "Mul" and set(n.input) & products]
    assert not _pool_reads_codes(opt)
    # the same model exported without the pass: onnxruntime keeps the Mul and pools uint8 codes
    monkeypatch.setattr(export_mod, "fold_softmax_scale", lambda proto, scopes: 0)
    before = _optimized(export_pooled(frozen, tmp_path / "unfolded.onnx"), tmp_path)
    products = {o for n in before.node if n.op_type in integer for o in n.output}
    assert [n.name for n in before.node if n.op_type == "Mul" and set(n.input) & products]
    assert _pool_reads_codes(before)
