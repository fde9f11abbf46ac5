"""``sam2-quant inspect RECIPE``: print the resolved per-layer table for a SAM 2 config."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..errors import RecipeError
from ..recipe import load_recipe, quantizable_layers, resolve, shipped_recipes
from ..recipe.attention_resolve import attention_modules, resolve_attention
from ..recipe.resolve import type_name
from ..recipe.table import format_attention_table, format_table, plan_totals
from ..sam2.build import build_sam2_model

HELP = "print the per-layer table a recipe resolves to (name, type, W bits, A bits, params)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="recipe YAML path or shipped name (e.g. w4a8); omit with --list")
    p.add_argument(
        "--config", default=None, help="SAM 2 config (default: the recipe's model, else sam2.1_hiera_t)"
    )
    p.add_argument("--all", action="store_true", help="also list quantizable layers the recipe leaves float")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--list", action="store_true", help="list the shipped recipes")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.list or not args.recipe:
        for key, path in shipped_recipes().items():
            out.write(f"{key:<32} {load_recipe(path).description.splitlines()[0][:80]}\n")
        return 0
    recipe = load_recipe(args.recipe)
    config = args.config or recipe.model or "sam2.1_hiera_t"
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)  # weights are not used here
    model = build_sam2_model(config)
    plans = resolve(model, recipe)
    attention = resolve_attention(model, recipe)
    if not any(p.quantized for p in plans.values()) and not any(p.quantized for p in attention.values()):
        raise RecipeError(  # what `run` and `export` (prepare_qat) refuse, refused here too
            f"recipe {recipe.name!r} quantizes no layer of {config}; run and export would refuse it. "
            "Fix: add a 'default' (e.g. 'default: {weight: {bits: 8}}') or rules whose 'match' selects "
            "layers within its targets."
        )
    if args.json:
        rows = [
            {
                "name": p.name,
                "type": p.type_name,
                "w_bits": p.weight_bits,
                "a_bits": p.activation_bits,
                "params": p.params,
                "weight_params": p.weight_params,
                "rule": p.matched_by,
            }
            for p in plans.values()
        ]
        attn = [
            {"name": p.name, "type": p.type_name, "bits": p.bits, "probs": p.probs, "rule": p.matched_by}
            for p in attention.values()
        ]
        doc = {"recipe": recipe.name, "config": config, "layers": rows, "totals": plan_totals(plans)}
        out.write(
            json.dumps(
                {**doc, "attention": attn},
                indent=2,
            )
            + "\n"
        )
        return 0
    extra = {n: type_name(m) for n, m in quantizable_layers(model).items()} if args.all else None
    out.write(f"recipe {recipe.name!r} on {config}\n{format_table(plans, all_layers=extra)}\n")
    all_attn = {n: type(m).__name__ for n, m in attention_modules(model).items()} if args.all else None
    out.write(f"\n{format_attention_table(attention, all_modules=all_attn)}\n")
    return 0
