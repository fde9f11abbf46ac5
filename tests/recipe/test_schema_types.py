"""Recipe booleans must be YAML booleans: a quoted "false" is a truthy string and would quantize wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.recipe import SCHEMA_VERSION, Recipe, load_recipe, weight_spec
from sam2_quant_plugin.recipe.schema import BOOL_FIELDS


def _recipe(weight: object) -> dict:
    return {"version": SCHEMA_VERSION, "name": "t", "default": {"weight": weight}}


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None, 0.0])
def test_a_bool_field_refuses_anything_but_a_bool(field: str, value: object) -> None:
    with pytest.raises(RecipeError, match=rf"default\.weight: {field}=.* must be true or false.*Fix: write"):
        Recipe.from_dict(_recipe({"bits": 8, field: value}))


def test_quoted_false_in_a_yaml_file_names_the_field_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text('version: 1\nname: r\ndefault:\n  weight: {bits: 8, symmetric: "false"}\n')
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert "symmetric='false'" in str(e.value)
    assert "'symmetric: false'" in str(e.value)


def test_learnable_bits_mapping_keeps_a_real_false_and_refuses_a_string() -> None:
    spec = Recipe.from_dict(_recipe({"bits": {"learnable": False, "init": 6}})).default.weight  # type: ignore[union-attr]
    assert spec.learnable is False  # bool("false") would have made it True
    assert Recipe.from_dict(_recipe({"bits": {"init": 6}})).default.weight.learnable is True  # type: ignore[union-attr]
    with pytest.raises(RecipeError, match="learnable='false' must be true or false"):
        Recipe.from_dict(_recipe({"bits": {"learnable": "false", "init": 6}}))


def test_real_yaml_booleans_load_as_written(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nname: r\ndefault:\n  weight: {bits: 8, symmetric: true, narrow_range: false}\n"
    )
    spec = load_recipe(path).default.weight  # type: ignore[union-attr]
    assert spec.symmetric is True
    assert spec.narrow_range is False


def test_the_python_api_checks_too() -> None:
    with pytest.raises(RecipeError, match="narrow_range"):
        weight_spec(bits=8, narrow_range="no")
