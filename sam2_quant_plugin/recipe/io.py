"""Recipe files: YAML load/dump and the recipes shipped in ``qconfigs/``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml

from ..errors import RecipeError
from ..io.atomic import atomic_write_text
from .schema import Recipe
from .yaml_strict import MAX_RECIPE_BYTES, safe_load_strict

DEFAULT_MODEL = "sam2.1_hiera_t"


def shipped_recipes() -> dict[str, Path]:
    """``<model>/<name>`` -> path for every recipe in the packaged ``qconfigs`` folder."""
    root = Path(str(resources.files("sam2_quant_plugin") / "qconfigs"))
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.glob("*/*.yaml"))}


def find_recipe(ref: str | Path) -> Path:
    """A path for ``ref``: an existing file, ``<model>/<name>`` or a bare ``<name>`` of a shipped recipe."""
    p = Path(ref)
    if p.is_file():
        return p
    shipped = shipped_recipes()
    key = str(ref).removesuffix(".yaml")
    for candidate in (key, f"{DEFAULT_MODEL}/{key}"):
        if candidate in shipped:
            return shipped[candidate]
    raise RecipeError(
        f"recipe {str(ref)!r} not found: it is neither a file nor a shipped recipe. "
        f"Shipped: {', '.join(shipped) or 'none'}; or pass a path to a YAML file."
    )


def load_recipe(ref: str | Path) -> Recipe:
    """Load a recipe from a YAML path or a shipped name (e.g. ``w8a8`` or ``sam2.1_hiera_t/w4a8``)."""
    if not isinstance(ref, (str, os.PathLike)):
        raise RecipeError(
            f"a recipe is a Recipe, a YAML path or a shipped name, got {type(ref).__name__} {ref!r:.80}. "
            "Fix: pass e.g. 'w8a8' (sam2-quant inspect --list shows the shipped ones) or load_recipe(path)"
        )
    path = find_recipe(ref)
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(
                f"{path} is {path.stat().st_size / 1e6:.1f} MB; a recipe is at most "
                f"{MAX_RECIPE_BYTES >> 20} MiB. Fix: check that you passed the recipe YAML file."
            )
        data = safe_load_strict(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RecipeError(f"{path}: cannot read the recipe ({e}); check that it is valid YAML") from None
    return Recipe.from_dict(data, source=str(path))


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)


def save_recipe(recipe: Recipe, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``recipe`` as YAML atomically; refuses to replace an existing file unless ``overwrite``."""
    return atomic_write_text(path, dump_recipe(recipe), overwrite=overwrite)
