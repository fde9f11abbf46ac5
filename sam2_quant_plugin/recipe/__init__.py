"""Recipes: the typed schema, YAML files, and per-layer resolution."""

from .io import dump_recipe, find_recipe, load_recipe, save_recipe, shipped_recipes
from .resolve import QUANTIZABLE_TYPES, LayerPlan, quantizable_layers, resolve
from .schema import SCHEMA_VERSION, LayerRule, QuantSpec, Recipe, activation_spec, weight_spec

__all__ = [
    "QUANTIZABLE_TYPES",
    "SCHEMA_VERSION",
    "LayerPlan",
    "LayerRule",
    "QuantSpec",
    "Recipe",
    "activation_spec",
    "dump_recipe",
    "find_recipe",
    "load_recipe",
    "quantizable_layers",
    "resolve",
    "save_recipe",
    "shipped_recipes",
    "weight_spec",
]
