"""Recipe files: shipped recipes, load by short name or path, YAML round trip, save never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.recipe import dump_recipe, find_recipe, load_recipe, save_recipe, shipped_recipes

EXPECTED = {
    "w8a8",
    "w8a8_vnni",
    "w8a8_fidelity",
    "w4a8",
    "w8_weight_only",
    "mixed",
    "learnable",
    "w4_g32",
    "w4_g32_gptq",
    "w8a8_video",
}


def test_shipped_recipes_present() -> None:
    shipped = shipped_recipes()
    assert {k.split("/")[1] for k in shipped} >= EXPECTED
    assert all(p.is_file() for p in shipped.values())


@pytest.mark.parametrize("key", sorted(shipped_recipes()))
def test_every_shipped_recipe_loads_and_round_trips(key: str, tmp_path: Path) -> None:
    r = load_recipe(key)
    assert r.name == key.split("/")[1]
    assert r.model == key.split("/")[0]
    assert load_recipe(shipped_recipes()[key]) == r
    out = save_recipe(r, tmp_path / "r.yaml")
    assert load_recipe(out) == r
    assert yaml.safe_load(dump_recipe(r)) == r.to_dict()


def test_load_by_short_name_and_by_path(tmp_path: Path) -> None:
    by_name = load_recipe("w8a8")
    assert by_name == load_recipe("sam2.1_hiera_t/w8a8")
    assert by_name == load_recipe("w8a8.yaml")
    copy = tmp_path / "mine.yaml"
    copy.write_text(shipped_recipes()["sam2.1_hiera_t/w8a8"].read_text())
    assert load_recipe(copy) == load_recipe(str(copy))
    assert load_recipe(copy).rules == by_name.rules
    assert find_recipe(copy) == copy


def test_unknown_recipe_lists_shipped() -> None:
    with pytest.raises(RecipeError, match="w8a8"):
        load_recipe("w3a3")


def test_invalid_yaml_and_bad_content(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules: [unclosed\n")
    with pytest.raises(RecipeError, match="valid YAML"):
        load_recipe(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("version: 1\nname: x\ndefualt: {weight: 8}\n")
    with pytest.raises(RecipeError, match="defualt"):
        load_recipe(unknown)


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    r = load_recipe("w4a8")
    path = save_recipe(r, tmp_path / "a.yaml")
    before = path.read_text()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_recipe(load_recipe("w8a8"), path)
    assert path.read_text() == before
    save_recipe(load_recipe("w8a8"), path, overwrite=True)
    assert load_recipe(path) == load_recipe("w8a8")
    assert [p.name for p in tmp_path.iterdir()] == ["a.yaml"]  # no temp files left behind
