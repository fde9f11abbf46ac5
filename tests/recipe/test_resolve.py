"""resolve(): precedence exact > regex > type > default, targets, and errors naming the offending rule."""

from __future__ import annotations

import pytest

from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.recipe import (
    LayerRule,
    Recipe,
    activation_spec,
    quantizable_layers,
    resolve,
    weight_spec,
)
from tests._utils import TINY_LAYERS, make_tiny_sam2_like

QKV0 = "image_encoder.trunk.blocks.0.attn.qkv"
QKV1 = "image_encoder.trunk.blocks.1.attn.qkv"
PATCH = "image_encoder.trunk.patch_embed.proj"
NECK = "image_encoder.neck.convs.0.conv"
Q_PROJ = "sam_mask_decoder.transformer.layers.0.self_attn.q_proj"


def W(bits: int):  # reads like the recipe's "W4"
    return weight_spec(bits=bits)


W8 = weight_spec(bits=8)


def recipe(rules=(), default=W8, targets=("image_encoder",)) -> Recipe:
    return Recipe(
        name="t",
        default=LayerRule("<default>", weight=default) if default is not None else None,
        rules=tuple(rules),
        targets=targets,
    )


@pytest.fixture(scope="module")
def model():
    return make_tiny_sam2_like()


def test_quantizable_layers_are_linear_and_conv(model) -> None:
    layers = quantizable_layers(model)
    assert {n: type(m).__name__ for n, m in layers.items()} == TINY_LAYERS


def test_default_covers_targets_only(model) -> None:
    plans = resolve(model, recipe())
    expected = {n for n in TINY_LAYERS if n.startswith("image_encoder.")}
    assert set(plans) == expected
    assert all(p.matched_by == "default" for p in plans.values())
    assert all(p.weight_bits == 8 for p in plans.values())
    assert all(p.activation is None for p in plans.values())
    qkv = plans[QKV0]
    assert qkv.params == 16 * 48 + 48
    assert qkv.type_name == "Linear"
    assert plans[NECK].type_name == "Conv2d"


def test_precedence_exact_regex_type_default(model) -> None:
    rules = [
        LayerRule("type:Linear", weight=W(6)),  # listed first: order must not beat precedence
        LayerRule(r"re:image_encoder\.trunk\.blocks\.\d+\.attn\.qkv", weight=W(5)),
        LayerRule(QKV0, weight=W(3)),
        LayerRule("type:Conv2d", weight=W(7)),
        LayerRule(r"re:.*patch_embed.*", weight=W(4)),
    ]
    plans = resolve(model, recipe(rules, default=W(2)))
    assert plans[QKV0].weight_bits == 3  # exact beats regex and type
    assert plans[QKV0].matched_by == "exact"
    assert plans[QKV1].weight_bits == 5  # regex beats type
    assert plans[QKV1].matched_by.startswith("re:")
    assert plans["image_encoder.trunk.blocks.0.attn.proj"].weight_bits == 6  # type beats default
    assert plans[PATCH].weight_bits == 4  # regex beats the Conv2d type rule
    assert plans[NECK].weight_bits == 7
    assert plans[NECK].matched_by == "type:Conv2d"
    assert Q_PROJ not in plans  # type rules stay inside targets


def test_default_applies_when_no_rule(model) -> None:
    plans = resolve(model, recipe([LayerRule(QKV0, weight=W(4))], default=W(6)))
    assert plans[QKV0].weight_bits == 4
    assert plans[NECK].weight_bits == 6
    assert plans[NECK].matched_by == "default"


def test_first_regex_wins(model) -> None:
    rules = [
        LayerRule(r"re:image_encoder\.trunk\.blocks\.0\..*", weight=W(4)),
        LayerRule(r"re:image_encoder\.trunk\.blocks\.\d+\.attn\..*", weight=W(6)),
    ]
    plans = resolve(model, recipe(rules))
    assert plans[QKV0].weight_bits == 4  # both match; the first in file order wins
    assert plans["image_encoder.trunk.blocks.0.attn.proj"].weight_bits == 4
    assert plans[QKV1].weight_bits == 6
    swapped = resolve(model, recipe(rules[::-1]))
    assert swapped[QKV0].weight_bits == 6
    assert swapped["image_encoder.trunk.blocks.0.mlp.layers.0"].weight_bits == 4


def test_exact_and_regex_reach_outside_targets(model) -> None:
    rules = [
        LayerRule(Q_PROJ, weight=W(4)),
        LayerRule(r"re:sam_mask_decoder\.output_hypernetworks_mlps\..*", activation=activation_spec(bits=8)),
    ]
    plans = resolve(model, recipe(rules))
    assert plans[Q_PROJ].weight_bits == 4
    hyper = plans["sam_mask_decoder.output_hypernetworks_mlps.0.layers.0"]
    assert hyper.weight is None
    assert hyper.activation_bits == 8


def test_exclusion_rule_keeps_layer_float(model) -> None:
    plans = resolve(model, recipe([LayerRule(QKV0)]))
    assert not plans[QKV0].quantized
    assert plans[QKV1].quantized


def test_targets_bound_default(model) -> None:
    plans = resolve(model, recipe(targets=("image_encoder.neck", "sam_mask_decoder.transformer")))
    assert set(plans) == {NECK} | {n for n in TINY_LAYERS if n.startswith("sam_mask_decoder.transformer")}
    everything = resolve(model, recipe(targets=("",)))
    assert set(everything) == set(TINY_LAYERS)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (LayerRule("image_encoder.trunk.blocks.7.attn.qkv", weight=W(4)), "no module has that name"),
        (LayerRule("image_encoder.trunk.blocks.0.norm1", weight=W(4)), "not a Linear/Conv2d"),
        (LayerRule(r"re:.*\.lora_[ab]", weight=W(4)), "matches no Linear/Conv2d"),
        (LayerRule("type:LayerNorm", weight=W(4)), "unknown type"),
        (LayerRule("re:image_encoder\\.trunk\\.(unclosed", weight=W(4)), "invalid regex"),
    ],
)
def test_rule_matching_nothing_errors_naming_it(model, rule: LayerRule, needle: str) -> None:
    with pytest.raises(RecipeError, match=needle) as info:
        resolve(model, recipe([rule]))
    assert repr(rule.match) in str(info.value)


def test_type_rule_outside_targets_or_fully_claimed_errors(model) -> None:
    # Conv2d layers exist, but not under the target
    r = recipe([LayerRule("type:Conv2d", weight=W(4))], targets=("sam_mask_decoder",))
    with pytest.raises(RecipeError, match=r"'type:Conv2d': selects no layer"):
        resolve(model, r)
    claimed = [
        LayerRule(PATCH, weight=W(8)),
        LayerRule(NECK, weight=W(8)),
        LayerRule("type:Conv2d", weight=W(4)),
    ]
    with pytest.raises(RecipeError, match=r"'type:Conv2d': selects no layer"):
        resolve(model, recipe(claimed))


def test_shadowed_regex_errors(model) -> None:
    rules = [
        LayerRule(r"re:image_encoder\.trunk\..*", weight=W(4)),
        LayerRule(r"re:image_encoder\.trunk\.blocks\.1\..*", weight=W(6)),  # every match already claimed
    ]
    with pytest.raises(RecipeError, match=r"blocks\\\\.1.*selects no layer"):
        resolve(model, recipe(rules))


def test_unknown_target_errors(model) -> None:
    with pytest.raises(RecipeError, match="target 'memory_attention'"):
        resolve(model, recipe(targets=("image_encoder", "memory_attention")))


def test_all_problems_reported_together(model) -> None:
    rules = [LayerRule("nope", weight=W(4)), LayerRule("re:zzz", weight=W(4)), LayerRule("type:Embedding")]
    with pytest.raises(RecipeError) as info:
        resolve(model, recipe(rules))
    msg = str(info.value)
    for needle in ("'nope'", "'re:zzz'", "'type:Embedding'", "sam2-quant inspect"):
        assert needle in msg


def test_shipped_mixed_recipe_on_tiny_model(model) -> None:
    from sam2_quant_plugin.recipe import load_recipe

    plans = resolve(model, load_recipe("mixed"))
    assert plans[QKV0].weight_bits == 8
    assert plans[QKV0].matched_by == "exact"
    assert plans[QKV1].weight_bits == 6
    assert plans["image_encoder.trunk.blocks.1.mlp.layers.1"].weight_bits == 4
    assert plans[NECK].weight_bits == 8
    assert plans[NECK].matched_by == "type:Conv2d"
    assert plans[Q_PROJ].matched_by == "default"
    assert not plans["sam_mask_decoder.output_hypernetworks_mlps.0.layers.0"].quantized
