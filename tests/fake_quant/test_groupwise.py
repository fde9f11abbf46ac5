"""Per-group weights through the whole core: recipe checks, prepare, learnable scales, freeze, convert."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.api import freeze, prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.cdpq.package import build_package, package_to_state_dict
from sam2_quant_plugin.convert import convert
from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.numerics import to_groups
from sam2_quant_plugin.qconfig import make_fake_quant
from sam2_quant_plugin.recipe.schema import LayerRule, QuantSpec, Recipe, activation_spec, weight_spec
from tests.onnx._models import TinyNet, example


def _recipe(*rules: LayerRule) -> Recipe:
    return Recipe(name="g", rules=rules, targets=("",))


def _group(bits: int = 4, g: int = 16) -> QuantSpec:
    return weight_spec(bits=bits, granularity="per_group", group_size=g)


def test_group_view_rows_are_runs_of_one_channel() -> None:
    w = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 64)
    v = to_groups(w, 32)
    assert v.shape == (4, 32)
    assert torch.equal(v[1], w[0, 32:])
    assert torch.equal(v[2], w[1, :32])
    with pytest.raises(ValueError, match="not a multiple of group_size=32"):
        to_groups(torch.zeros(4, 48), 32)


def test_spec_defaults_checks_and_round_trip() -> None:
    spec = weight_spec(bits=4, granularity="per_group")
    assert spec.group_size == 32
    assert spec.per_channel
    assert QuantSpec(**{**spec.to_dict(), "observer_args": {}}) == spec
    assert "group_size" not in weight_spec(bits=4).to_dict()  # per-channel recipes read as before
    with pytest.raises(RecipeError, match="power of two"):
        weight_spec(bits=4, granularity="per_group", group_size=24)
    with pytest.raises(RecipeError, match="needs granularity: per_group"):
        weight_spec(bits=4, group_size=32)
    with pytest.raises(RecipeError, match="weights only"):
        LayerRule(match="fc1", activation=activation_spec(bits=8, observer="minmax", granularity="per_group"))


def test_prepare_lists_every_layer_whose_inputs_do_not_split() -> None:
    # stem has 48 inputs per channel, head 32: neither splits into groups of 64; fc2 (64) does
    recipe = _recipe(*(LayerRule(match=n, weight=_group(g=64)) for n in ("stem", "fc2", "head")))
    with pytest.raises(RecipeError, match=r"'stem' \(matched by exact\).*group_size 64, it has 48") as e:
        prepare_qat(TinyNet(), recipe)
    assert "'head' (matched by exact)" in str(e.value)
    assert "'fc2'" not in str(e.value)
    assert "granularity: per_channel" in str(e.value)


def test_learnable_group_scales_train_and_freeze_bit_exact() -> None:
    fq = make_fake_quant(weight_spec(bits=4, granularity="per_group", group_size=16, learn_scale=True))
    w = torch.randn(8, 64)
    fq(w)  # observe: one scale per group
    fq.disable_observer()
    assert fq.scale.shape == (8 * 4,)
    w.requires_grad_(True)
    fq(w).pow(2).sum().backward()
    assert fq.scale.grad is not None
    assert fq.scale.grad.shape == (32,)
    assert fq.scale.grad.abs().sum() > 0
    from sam2_quant_plugin.fake_quant.frozen import FrozenFakeQuantize

    frozen = FrozenFakeQuantize.from_fake_quant(fq)
    assert frozen.group_size == 16
    with torch.no_grad():
        assert torch.equal(frozen(w), fq(w))
    codes = torch.round(to_groups(frozen(w).detach(), 16) / frozen.scale[:, None])
    assert codes.abs().max() <= 7


def _calibrated(recipe: Recipe) -> torch.nn.Module:
    q = prepare_qat(TinyNet().eval(), recipe)
    calibrate(q, forward_loop=lambda m: m(example(4)), progress=False)
    return q


def test_weight_only_groups_convert_and_package_round_trip() -> None:
    q = _calibrated(
        _recipe(LayerRule(match="fc2", weight=_group(4)), LayerRule(match="head", weight=_group(3)))
    )
    with torch.no_grad():
        ref = q(example())
        assert torch.allclose(convert(q)(example()), ref, atol=1e-6)
    package = build_package(q)
    assert package["layers"]["fc2"]["group_size"] == 16
    assert package["layers"]["fc2"]["codes"].shape == (32, 64)
    state = package_to_state_dict(package)
    w = q.fc2.weight_fake_quant(q.fc2.weight).detach()
    assert torch.allclose(state["fc2.weight"], w, atol=1e-6)


def test_convert_refuses_grouped_weights_on_int8_kernels() -> None:
    rule = LayerRule(match="fc2", weight=_group(8), activation=activation_spec(bits=8, observer="minmax"))
    q = freeze(_calibrated(_recipe(rule)))
    with pytest.raises(ValueError, match="per_group"):
        convert(q)


def test_state_from_another_granularity_is_named_not_crashed() -> None:
    from sam2_quant_plugin.errors import CalibrationError

    w = torch.randn(8, 64)
    per_channel = make_fake_quant(weight_spec(bits=4))
    per_channel(w)
    grouped = make_fake_quant(weight_spec(bits=4, granularity="per_group", group_size=16))
    grouped.load_state_dict(per_channel.state_dict())
    grouped.disable_observer()
    with pytest.raises(CalibrationError, match="8 scales but the tensor has 32 groups of 16"):
        grouped(w)
