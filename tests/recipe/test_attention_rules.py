"""The recipe's ``attention:`` section: strict dict conversion, bit checks, resolution and its errors."""

from __future__ import annotations

import dataclasses

import pytest

from sam2_quant_plugin.errors import BitsError, RecipeError
from sam2_quant_plugin.numerics import MAX_BITS, MIN_BITS
from sam2_quant_plugin.recipe import SCHEMA_VERSION, Recipe, load_recipe
from sam2_quant_plugin.recipe.attention_resolve import attention_modules, resolve_attention
from tests._utils.tiny_attention import ATTN_MODULES, make_tiny_attention

ENC = "image_encoder.trunk.blocks.0.attn"


def recipe(attention: list | None = None, **over: object) -> Recipe:
    d: dict = {"version": SCHEMA_VERSION, "name": "t", "rules": [{"match": "type:Linear", "weight": 8}]}
    if attention is not None:
        d["attention"] = attention
    d.update(over)
    return Recipe.from_dict(d)


def test_defaults_and_round_trip() -> None:
    r = recipe([{"match": "type:MultiScaleAttention"}, {"match": ENC, "bits": None}])
    rule = r.attention[0]
    assert (rule.bits, rule.observer, rule.probs) == (8, "minmax", "observed")  # fixed loses long rows
    assert rule.spec is not None
    assert not rule.spec.symmetric
    assert rule.spec.granularity == "per_tensor"
    assert r.attention[1].spec is None
    assert Recipe.from_dict(r.to_dict()) == r


def test_recipe_without_section_is_unchanged() -> None:
    r = recipe()
    assert r.attention == ()
    assert "attention" not in r.to_dict()
    assert Recipe.from_dict(r.to_dict()) == r
    assert "attention" not in load_recipe("w8a8").to_dict()


@pytest.mark.parametrize("bits", [MIN_BITS - 1, MAX_BITS + 1, 7.5, True])
def test_bits_out_of_range_name_the_rule(bits: object) -> None:
    with pytest.raises(BitsError, match=r"attention\[0\].*bits"):
        recipe([{"match": ENC, "bits": bits}])


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"match": ENC, "symmetric": True}, "unknown key"),
        ({"match": ENC, "probs": "learned"}, "probs"),
        ({"match": ENC, "observer": "nope"}, "not registered"),
        ({"bits": 8}, "no 'match'"),
        ("type:Attention", "mapping"),
    ],
)
def test_bad_rules_are_errors(rule: object, words: str) -> None:
    with pytest.raises(RecipeError, match=words):
        recipe([rule])


def test_section_must_be_a_list_and_exact_names_unique() -> None:
    with pytest.raises(RecipeError, match="list of rules"):
        recipe({"match": ENC})  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="two exact attention rules"):
        recipe([{"match": ENC}, {"match": ENC, "bits": 6}])


def test_attention_modules_are_the_sdpa_callers() -> None:
    found = {n: type(m).__name__ for n, m in attention_modules(make_tiny_attention()).items()}
    assert found == ATTN_MODULES


def test_precedence_exact_over_regex() -> None:
    r = recipe(
        [
            {"match": r"re:image_encoder\.trunk\.blocks\.[01]\.attn", "bits": 6},
            {"match": ENC, "bits": None},
            {"match": "type:Attention", "bits": 4, "probs": "observed"},
        ]
    )
    plans = resolve_attention(make_tiny_attention(), r)
    assert plans[ENC].matched_by == "exact"
    assert not plans[ENC].quantized
    assert plans["image_encoder.trunk.blocks.1.attn"].bits == 6
    dec = plans["sam_mask_decoder.transformer.layers.0.self_attn"]
    assert (dec.bits, dec.probs, dec.matched_by) == (4, "observed", "type:Attention")


def test_precedence_regex_over_type() -> None:
    r = recipe(
        [{"match": "type:MultiScaleAttention", "bits": 8}, {"match": r"re:.*blocks\.1\.attn", "bits": 5}]
    )
    plans = resolve_attention(make_tiny_attention(), r)
    assert (plans[ENC].bits, plans[ENC].matched_by) == (8, "type:MultiScaleAttention")
    assert plans["image_encoder.trunk.blocks.1.attn"].bits == 5


def test_type_rules_stay_under_targets() -> None:
    r = recipe([{"match": "type:Attention"}], targets=["image_encoder"])
    with pytest.raises(RecipeError, match="'type:Attention': selects no attention module"):
        resolve_attention(make_tiny_attention(), r)


@pytest.mark.parametrize(
    ("match", "words"),
    [
        ("image_encoder.trunk.blocks.7.attn", "no module has that name"),
        ("image_encoder.trunk.blocks.0.mlp", "does not call"),
        ("re:.*cross_attn.*", "matches no attention module"),
        ("type:RoPEAttention", "selects no attention module"),
    ],
)
def test_unmatched_rule_is_an_error_naming_it(match: str, words: str) -> None:
    with pytest.raises(RecipeError, match=words) as e:
        resolve_attention(make_tiny_attention(), recipe([{"match": match}]))
    assert repr(match) in str(e.value)
    assert "Fix" in str(e.value) or "fix" in str(e.value)


def test_shadowed_regex_is_an_error() -> None:
    r = recipe([{"match": "re:.*attn"}, {"match": r"re:image_encoder\..*"}])
    with pytest.raises(RecipeError, match="claimed by an exact-name rule or an earlier regex"):
        resolve_attention(make_tiny_attention(), r)


def test_shipped_attention_recipe_is_w8a8_plus_attention() -> None:
    base, attn = load_recipe("w8a8"), load_recipe("w8a8_attn")
    assert attn.attention
    assert all(r.spec is not None for r in attn.attention)
    same = dataclasses.replace(attn, name=base.name, description=base.description, attention=())
    assert same == base
