"""Per-group weight scales: every weight format exports, runs in onnxruntime and matches PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from sam2_quant_plugin.onnx import make_session, quant_ranges
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, weight_spec
from tests.onnx._models import example, frozen

pytestmark = pytest.mark.onnx

#: layer -> weight bits; every layer per_group with 16-wide groups (stem K=48, fc1 16, fc2 64, head 32)
GROUP_BITS = {"stem": 8, "fc1": 4, "fc2": 8, "head": 3}


def group_recipe(group_size: int = 16) -> Recipe:
    rules = tuple(
        LayerRule(match=n, weight=weight_spec(bits=b, granularity="per_group", group_size=group_size))
        for n, b in GROUP_BITS.items()
    )
    return Recipe(name="tiny-group", rules=rules, targets=("",))


@pytest.fixture(scope="module")
def grouped() -> torch.nn.Module:
    return frozen(group_recipe())


def _export(model: torch.nn.Module, path, **kw):  # type: ignore[no-untyped-def]
    return export_module(model, (example(),), path, input_names=("x",), output_names=("y",), **kw)


def _max_diff(model: torch.nn.Module, path, optimization: str = "all") -> float:  # type: ignore[no-untyped-def]
    x = example()
    with torch.no_grad():
        ref = model(x).numpy()
    out = make_session(path, optimization=optimization).run(None, {"x": x.numpy()})[0]
    return float(np.abs(out - ref).max())


@pytest.mark.parametrize(("fmt", "opset"), [("qdq", 17), ("int8", 17), ("int4", 21), ("matmulnbits", 17)])
def test_every_format_matches_torch(grouped, tmp_path, fmt, opset) -> None:  # type: ignore[no-untyped-def]
    path = _export(grouped, tmp_path / f"{fmt}.onnx", weight_format=fmt, opset=opset)
    onnx.checker.check_model(str(path))
    ranges = quant_ranges(onnx.load(str(path)))
    assert {k[0]: r.bits for k, r in ranges.items() if k[1] == "weight"} == GROUP_BITS
    assert _max_diff(grouped, path, "disable") < 1e-4
    assert _max_diff(grouped, path, "all") < 1e-4


def test_matmulnbits_blocks_carry_the_group_scales(grouped, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proto = onnx.load(str(_export(grouped, tmp_path / "nbits.onnx", weight_format="matmulnbits")))
    nodes = {n.name.split("/")[1]: n for n in proto.graph.node if n.op_type == "MatMulNBits"}
    assert set(nodes) == {"fc1", "fc2", "head"}  # the conv stays DequantizeLinear -> Reshape -> Conv
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for name, node in nodes.items():
        attrs = {a.name: a.i for a in node.attribute}
        assert attrs["block_size"] == 16
        layer = grouped.get_submodule(name)
        fq = layer.weight_fake_quant
        n, k = layer.weight.shape
        scales = inits[node.input[2]].reshape(n, k // 16)
        np.testing.assert_array_equal(scales, fq.scale.numpy().reshape(n, k // 16))
        if k > 16:  # real block scales: they differ along K within a row (per-channel would repeat them)
            assert (scales.std(axis=1) > 0).any()


def test_group_scales_beat_per_channel_on_outlier_weights() -> None:
    """Same bits, same file size in MatMulNBits form: per-group confines an outlier to its block."""
    from sam2_quant_plugin.qconfig import make_fake_quant

    torch.manual_seed(0)
    w = torch.randn(32, 128) * 0.02
    w[:, 5] *= 40  # one outlier input column
    errors = {}
    for gran, g in (("per_channel", None), ("per_group", 32)):
        fq = make_fake_quant(weight_spec(bits=4, granularity=gran, group_size=g))
        fq(w)  # observe once (min-max)
        fq.disable_observer()
        with torch.no_grad():
            errors[gran] = float((fq(w) - w).pow(2).mean())
    assert errors["per_group"] < 0.5 * errors["per_channel"]
