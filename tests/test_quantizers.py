"""``quantizers(model)``: the one public list of a prepared model's quantizers (plan + fake-quant modules)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sam2_quant_plugin import (
    FrozenFakeQuantize,
    QuantizerInfo,
    calibrate,
    freeze,
    is_prepared,
    prepare_qat,
    quant_state,
    quantizers,
)
from sam2_quant_plugin.api import INPUT_FQ, WEIGHT_FQ, quant_state_or_none, remove_input_hook
from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.numerics import qrange
from sam2_quant_plugin.recipe import LayerRule, Recipe, activation_spec, weight_spec
from tests._utils import make_tiny_sam2_like, tiny_input

QKV0 = "image_encoder.trunk.blocks.0.attn.qkv"
MLP1 = "image_encoder.trunk.blocks.1.mlp.layers.0"
Q_PROJ = "sam_mask_decoder.transformer.layers.0.self_attn.q_proj"
CONV = "image_encoder.neck.convs.0.conv"


def mixed() -> Recipe:
    """w8a8 default on the encoder; a per-group 4-bit weight, a learnable one, a per-tensor 3-bit one."""
    return Recipe(
        name="tiny-plan",
        targets=("image_encoder",),
        default=LayerRule("<default>", weight_spec(bits=8), activation_spec(bits=8, observer="minmax")),
        rules=(
            LayerRule(
                QKV0, weight_spec(bits=4, granularity="per_group", group_size=16), activation_spec(bits=6)
            ),
            LayerRule(MLP1, weight_spec(bits=6, learnable=True, min_bits=2, max_bits=8), None),
            LayerRule(Q_PROJ, weight_spec(bits=3, granularity="per_tensor"), None),
            LayerRule(CONV, weight_spec(bits=5), None),
        ),
    )


def calibrated(recipe: Recipe) -> nn.Module:
    x = tiny_input()
    return calibrate(prepare_qat(make_tiny_sam2_like(), recipe), forward_loop=lambda m: m(x))


def _expected(model: nn.Module) -> dict[tuple[str, str], tuple[int, int, int, bool, str, int | None]]:
    out = {}
    for name, plan in quant_state(model).plans.items():
        for kind, spec in (("weight", plan.weight), ("activation", plan.activation)):
            if spec is not None:
                lo, hi = qrange(spec.bits, spec.symmetric, spec.narrow_range)
                out[(name, kind)] = (spec.bits, lo, hi, spec.symmetric, spec.granularity, spec.group_size)
    return out


def _view(qs: dict[tuple[str, str], QuantizerInfo]) -> dict[tuple[str, str], tuple[object, ...]]:
    return {k: (q.bits, q.qmin, q.qmax, q.signed, q.granularity, q.group_size) for k, q in qs.items()}


def test_lists_exactly_the_plans_quantizers_with_their_ranges() -> None:
    model = calibrated(mixed())
    qs = quantizers(model)
    assert _view(qs) == _expected(model)
    assert len(qs) == 11 + 8  # weights: the 10 encoder layers and q_proj; inputs: the encoder's but 2
    for (layer, kind), q in qs.items():
        assert (q.layer, q.kind) == (layer, kind)
        assert q.module is model.get_submodule(q.module_name)  # the live fake-quant module
        assert q.module_name == f"{layer}.{WEIGHT_FQ if kind == 'weight' else INPUT_FQ}"
    assert qs[(QKV0, "weight")].ch_axis == 0
    assert qs[(QKV0, "weight")].group_size == 16
    assert qs[(QKV0, "activation")].to_dict() == {
        "bits": 6,
        "qmin": 0,
        "qmax": 63,
        "signed": False,
        "granularity": "per_tensor",
    }
    assert qs[(Q_PROJ, "weight")].ch_axis is None
    assert qs[(CONV, "weight")].to_dict() == {
        "bits": 5,
        "qmin": -15,
        "qmax": 15,
        "signed": True,
        "granularity": "per_channel",
        "ch_axis": 0,
    }


def test_freeze_keeps_the_view_and_learned_bits_show() -> None:
    model = calibrated(mixed())
    model.get_submodule(MLP1).weight_fake_quant.set_bits(3)  # as training or a search would move it
    assert quantizers(model)[(MLP1, "weight")].bits == 3
    frozen = freeze(model)
    qs = quantizers(frozen)
    assert _view(qs) == _expected(frozen)  # freeze wrote the integer bits back into the plan
    assert (qs[(MLP1, "weight")].qmin, qs[(MLP1, "weight")].qmax) == (-3, 3)
    assert all(isinstance(q.module, FrozenFakeQuantize) for q in qs.values())
    assert {k: q.to_dict() for k, q in qs.items()} == {k: q.to_dict() for k, q in quantizers(model).items()}


def test_float_models_are_not_prepared() -> None:
    model = make_tiny_sam2_like()
    assert not is_prepared(model)
    assert quant_state_or_none(model) is None
    with pytest.raises(RecipeError, match="not prepared"):
        quantizers(model)
    q = prepare_qat(model, mixed())
    assert is_prepared(q)
    assert quant_state_or_none(q) is quant_state(q)


def test_remove_input_hook_removes_only_the_input_quant_hook() -> None:
    model = calibrated(mixed())
    layer = model.get_submodule(QKV0)
    calls: list[int] = []
    layer.register_forward_pre_hook(lambda m, a: calls.append(1))
    assert remove_input_hook(layer)
    assert not remove_input_hook(layer)
    assert len(layer._forward_pre_hooks) == 1  # the caller's own hook stays
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        assert torch.equal(
            layer(x), nn.functional.linear(x, layer.weight_fake_quant(layer.weight), layer.bias)
        )
    assert calls == [1]
