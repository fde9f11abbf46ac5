"""GPTQ rounding: pure maths on correlated inputs, the recipe switch, calibrate integration, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.gptq import gptq_round
from sam2_quant_plugin.numerics import to_groups
from sam2_quant_plugin.recipe.schema import LayerRule, Recipe, activation_spec, weight_spec
from tests.onnx._models import TinyNet, example


def _correlated_inputs(n: int = 512, k: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(8, k, generator=g)  # inputs live near an 8-dim subspace, as real features do
    return torch.randn(n, 8, generator=g) @ basis + 0.05 * torch.randn(n, k, generator=g)


def _rtn(w: torch.Tensor, scale: torch.Tensor, group: int, qmax: int = 7) -> torch.Tensor:
    view = to_groups(w, group) if group else w
    return (torch.clamp(torch.round(view / scale[:, None]), -qmax, qmax) * scale[:, None]).reshape(w.shape)


@pytest.mark.parametrize("group", [0, 16])
def test_gptq_beats_nearest_on_the_layer_output_and_stays_on_grid(group: int) -> None:
    torch.manual_seed(1)
    w = torch.randn(32, 64) * 0.05
    x = _correlated_inputs()
    h = x.T @ x / len(x)
    q, scale = gptq_round(w, h, -7, 7, group)
    assert scale.numel() == (32 * 64 // group if group else 32)
    codes = (to_groups(q, group) if group else q) / scale[:, None]
    assert torch.allclose(codes, codes.round(), atol=1e-4)  # every weight is code * its own scale
    assert codes.round().abs().max() <= 7
    err_gptq = (x @ (w - q).T).pow(2).mean()
    err_rtn = (x @ (w - _rtn(w, scale, group)).T).pow(2).mean()  # nearest with GPTQ's own scales
    assert err_gptq < 0.5 * err_rtn


def test_recipe_switch_is_checked() -> None:
    assert weight_spec(bits=4, rounding="gptq").to_dict()["rounding"] == "gptq"
    assert "rounding" not in weight_spec(bits=4).to_dict()  # nearest recipes read as before
    with pytest.raises(RecipeError, match="unknown"):
        weight_spec(bits=4, rounding="adaround")
    with pytest.raises(RecipeError, match="symmetric"):
        weight_spec(bits=4, rounding="gptq", symmetric=False)
    with pytest.raises(RecipeError, match="weights only"):
        LayerRule(match="fc1", activation=activation_spec(bits=8, rounding="gptq", symmetric=True))
    conv = Recipe(
        name="r", rules=(LayerRule(match="stem", weight=weight_spec(bits=4, rounding="gptq")),), targets=("",)
    )
    with pytest.raises(RecipeError, match=r"'stem'.*Linear layers, not Conv2d"):
        prepare_qat(TinyNet(), conv)


def _frozen(rounding: str) -> torch.nn.Module:
    spec = weight_spec(bits=3, granularity="per_group", group_size=16, rounding=rounding)
    rules = tuple(LayerRule(match=n, weight=spec) for n in ("fc1", "fc2", "head"))
    q = prepare_qat(TinyNet().eval(), Recipe(name="r", rules=rules, targets=("",)))
    calibrate(q, forward_loop=lambda m: m(example(16)), progress=False)
    return freeze(q)


def test_calibrate_applies_gptq_and_export_matches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sam2_quant_plugin.onnx import make_session
    from sam2_quant_plugin.onnx.export import export_module

    x = example(4)
    with torch.no_grad():
        ref = TinyNet().eval()(x)
        errors = {r: float((_frozen(r)(x) - ref).pow(2).mean()) for r in ("nearest", "gptq")}
    assert errors["gptq"] < 0.8 * errors["nearest"]
    model = _frozen("gptq")
    with torch.no_grad():  # the weights sit on their grid: fake-quant leaves them unchanged
        assert torch.equal(model.fc2.weight_fake_quant(model.fc2.weight), model.fc2.weight)
        want = model(example()).numpy()
    path = export_module(
        model,
        (example(),),
        tmp_path / "g.onnx",
        input_names=("x",),
        output_names=("y",),
        weight_format="matmulnbits",
    )
    got = make_session(path).run(None, {"x": example().numpy()})[0]
    assert np.abs(got - want).max() < 1e-4
