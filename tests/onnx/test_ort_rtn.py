"""onnx.ort_rtn: onnxruntime's RTN MatMulNBits quantizer on float32 and fp16 graphs of a small model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.onnx.fp16 import to_fp16
from sam2_quant_plugin.onnx.ort_rtn import ort_rtn_quantize
from tests.onnx._models import TinyNet, example

pytestmark = pytest.mark.onnx


def _run(path) -> np.ndarray:  # type: ignore[no-untyped-def]
    return make_session(path).run(None, {"x": example().numpy()})[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("half", [False, True])
def test_rtn_replaces_every_linear_and_stays_close(tmp_path, capsys, half: bool) -> None:  # type: ignore[no-untyped-def]
    src = export_module(
        TinyNet().eval(), (example(),), tmp_path / "f.onnx", input_names=("x",), output_names=("y",)
    )
    if half:
        src = to_fp16(src, tmp_path / "f16.onnx")
    capsys.readouterr()
    out = ort_rtn_quantize(src, tmp_path / "rtn.onnx", block_size=32)
    assert capsys.readouterr().out == ""  # onnxruntime's progress bar does not reach stdout
    proto = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    nbits = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 3  # fc1, fc2, head; the conv stem stays as it is
    assert [n.op_type for n in proto.graph.node].count("Conv") == 1
    assert not any(n.op_type == "MatMul" for n in proto.graph.node)
    for n in nbits:
        attrs = {a.name: a.i for a in n.attribute}
        assert (attrs["bits"], attrs["block_size"]) == (4, 32)
        assert len(n.input) == 3 or not n.input[3]  # symmetric: no zero points
        assert inits[n.input[2]].dtype == (np.float16 if half else np.float32)
    assert any(o.domain == "com.microsoft" for o in proto.opset_import)
    ref, got = _run(src), _run(out)
    assert got.dtype == np.float32
    assert 0.98 < _cosine(ref, got) < 1.0 - 1e-7  # 4-bit weights: close, but not the same numbers
