"""Recipe schema: strict dict conversion, bit checks naming the field, learnable-bits syntax, versions."""

from __future__ import annotations

import pytest

from sam2_quant_plugin.errors import BitsError, RecipeError
from sam2_quant_plugin.recipe import (
    SCHEMA_VERSION,
    LayerRule,
    QuantSpec,
    Recipe,
    activation_spec,
    weight_spec,
)


def base(**over) -> dict:
    d = {
        "version": SCHEMA_VERSION,
        "name": "t",
        "targets": ["image_encoder"],
        "default": {"weight": {"bits": 8}, "activation": {"bits": 8}},
        "rules": [{"match": "re:.*qkv", "weight": {"bits": 4, "observer": "mse"}}],
    }
    d.update(over)
    return d


def test_from_dict_fills_weight_and_activation_defaults() -> None:
    r = Recipe.from_dict(base())
    w, a = r.default.weight, r.default.activation
    assert w == weight_spec(bits=8)
    assert w.per_channel
    assert w.narrow_range
    assert a == activation_spec(bits=8)
    assert not a.per_channel
    assert not a.symmetric
    assert a.observer == "percentile"
    assert r.rules[0].kind == "regex"
    assert r.rules[0].pattern == ".*qkv"
    assert r.rules[0].weight.bits == 4
    assert r.rules[0].activation is None


def test_to_dict_from_dict_round_trip() -> None:
    r = Recipe.from_dict(base(description="d", model="sam2.1_hiera_t"))
    assert Recipe.from_dict(r.to_dict()) == r


def test_shorthand_int_and_float_specs() -> None:
    r = Recipe.from_dict(base(rules=[{"match": "a.b", "weight": 6, "activation": "float"}]))
    assert r.rules[0].weight.bits == 6
    assert r.rules[0].activation is None


@pytest.mark.parametrize(
    ("where", "patch", "key"),
    [
        ("top", {"colour": 1}, "colour"),
        ("rule", {"rules": [{"match": "x", "wieght": {"bits": 8}}]}, "wieght"),
        ("spec", {"rules": [{"match": "x", "weight": {"bits": 8, "observr": "mse"}}]}, "observr"),
        (
            "bits",
            {"rules": [{"match": "x", "weight": {"bits": {"learnable": True, "initial": 4}}}]},
            "initial",
        ),
    ],
)
def test_unknown_keys_error_names_the_key(where: str, patch: dict, key: str) -> None:
    with pytest.raises(RecipeError, match=key):
        Recipe.from_dict(base(**patch))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"bits": 1}, "bits=1"),
        ({"bits": 9}, "bits=9"),
        ({"bits": 4.5}, "bits=4.5"),
        ({"bits": "8"}, "bits='8'"),
        ({"bits": {"learnable": True, "init": 4, "min": 1}}, "min_bits=1"),
        ({"bits": {"learnable": True, "init": 4, "max": 9}}, "max_bits=9"),
        ({"bits": {"learnable": True, "init": 9}}, "bits=9"),
    ],
)
def test_bad_bits_raise_bits_error_naming_the_field(spec: dict, field: str) -> None:
    with pytest.raises(BitsError, match=field) as info:
        Recipe.from_dict(base(rules=[{"match": "x", "weight": spec}]))
    assert "rules[0].weight" in str(info.value)  # and where it is


def test_bad_activation_bits_name_the_activation() -> None:
    with pytest.raises(BitsError, match=r"default\.activation"):
        Recipe.from_dict(base(default={"activation": {"bits": 9}}))


def test_float_whole_bits_become_ints() -> None:
    spec = QuantSpec(bits=6.0, min_bits=2.0, max_bits=8.0)
    assert type(spec.bits) is int
    assert type(spec.min_bits) is int
    assert type(spec.max_bits) is int


def test_min_greater_than_max() -> None:
    with pytest.raises(RecipeError, match="swap"):
        QuantSpec(bits=4, min_bits=6, max_bits=4)


def test_unknown_granularity() -> None:
    with pytest.raises(RecipeError, match="granularity"):
        Recipe.from_dict(base(rules=[{"match": "x", "weight": {"bits": 8, "granularity": "per_row"}}]))


def test_missing_and_wrong_version() -> None:
    d = base()
    del d["version"]
    with pytest.raises(RecipeError, match="missing 'version'"):
        Recipe.from_dict(d)
    with pytest.raises(RecipeError, match="schema version 2"):
        Recipe.from_dict(base(version=2))


def test_learnable_bits_syntax() -> None:
    r = Recipe.from_dict(
        base(default={"weight": {"bits": {"learnable": True, "init": 6, "min": 3, "max": 7}}})
    )
    w = r.default.weight
    assert w.learnable
    assert (w.bits, w.min_bits, w.max_bits) == (6, 3, 7)
    # init defaults to max, min/max to 2..8
    w2 = Recipe.from_dict(base(default={"weight": {"bits": {"learnable": True}}})).default.weight
    assert (w2.bits, w2.min_bits, w2.max_bits) == (8, 2, 8)
    fixed = w.with_bits(5)
    assert not fixed.learnable
    assert fixed.bits == 5
    assert fixed.granularity == w.granularity


def test_structural_errors() -> None:
    with pytest.raises(RecipeError, match="mapping at top level"):
        Recipe.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="must be a list"):
        Recipe.from_dict(base(rules={"match": "x"}))
    with pytest.raises(RecipeError, match="no 'match'"):
        Recipe.from_dict(base(rules=[{"weight": 8}]))
    with pytest.raises(RecipeError, match="expected a mapping"):
        Recipe.from_dict(base(rules=[{"match": "x", "weight": [8]}]))


def test_rule_kinds() -> None:
    assert LayerRule("a.b").kind == "exact"
    assert LayerRule("re:a\\..*").kind == "regex"
    assert LayerRule("type:Linear").pattern == "Linear"
