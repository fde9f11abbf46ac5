"""benchmarks/attention_matmul.py --profile: its scale-after form is what export wrote before
onnx/attention_scale.py, and the kernel profile sees the difference."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from benchmarks.attention_matmul import scale_after
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.timing import profile_kernels
from tests._utils.pooled_attention import export_pooled, frozen_pooled, pooled_tokens

pytestmark = pytest.mark.onnx


def test_scale_after_form_matches_torch_and_profiles_its_mul(tmp_path: Path) -> None:
    model = frozen_pooled(8)
    path = export_pooled(model, tmp_path / "folded.onnx")
    before = tmp_path / "scale_after.onnx"
    assert scale_after(path, before) == 1
    ops = {p: Counter(n.op_type for n in onnx.load(str(p)).graph.node) for p in (path, before)}
    assert ops[before]["Mul"] == ops[path]["Mul"]  # one Mul moved from q to the scores
    assert not [n for n in onnx.load(str(before)).graph.node if n.name.endswith("SoftmaxScale")]
    x = pooled_tokens(seed=3)
    with torch.no_grad():
        ref = model(x).numpy()
    for p in (path, before):
        got = make_session(p, optimization="disable").run(None, {"x": x.numpy()})[0]
        assert np.abs(got - ref).max() < 1e-4, p.name
    prof = profile_kernels({"folded": path, "before": before}, 16, threads=1, repeats=2)
    assert prof["before"].get("MaxPool", 0.0) > 0
    assert prof["folded"].get("MaxPool", 0.0) > 0
    assert prof["before"].get("Mul", 0.0) > 0  # onnxruntime keeps the Mul over the scores
