"""benchmarks/weight_only_conv.py: its DequantizeLinear form is what export wrote before load_fold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from benchmarks.weight_only_conv import as_dequantize, profile
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_module
from tests.onnx._models import example, frozen, w8a8_recipe

pytestmark = pytest.mark.onnx


def test_dequantize_form_gives_the_same_outputs_and_both_are_profiled(tmp_path: Path) -> None:
    model = frozen(w8a8_recipe(7, conv_inputs=False))  # weight-only conv stem, W8A8 Linears
    path = export_module(model, (example(),), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    assert as_dequantize(path, tmp_path / "dq.onnx") == 1
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "dq.onnx")).graph.node)
    assert ops["Cast"] == 0
    assert (
        ops["DequantizeLinear"]
        == Counter(n.op_type for n in onnx.load(str(path)).graph.node)["DequantizeLinear"] + 1
    )
    x = {"x": example().numpy()}
    a = make_session(path, optimization="disable").run(None, x)[0]
    b = make_session(tmp_path / "dq.onnx", optimization="disable").run(None, x)[0]
    np.testing.assert_array_equal(a, b)  # same codes, same scales: the same weights
    prof = profile({"cast_mul": path, "dequantize": tmp_path / "dq.onnx"}, 16, threads=1, repeats=2)
    assert prof["dequantize"]["DequantizeLinear_ms"] > prof["cast_mul"]["DequantizeLinear_ms"]
    assert all(p["all_kernels_ms"] >= p["conv_kernels_ms"] > 0 for p in prof.values())
