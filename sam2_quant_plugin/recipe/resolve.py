"""Resolve a recipe against a model: one :class:`LayerPlan` per quantizable layer.

Precedence, highest first (documented in README and tested):

1. exact module name;
2. ``re:`` regex (full match; among several matching regexes, the first in file order wins);
3. ``type:`` module class name, for layers under the recipe's ``targets`` (first in file order wins);
4. ``default``, for layers under one of the recipe's ``targets`` prefixes.

A rule that selects no quantizable layer is an error naming the rule, never a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import RecipeError
from .opaque import opaque_layers, refusal
from .schema import QuantSpec, Recipe
from .selector import RuleSet, under

#: Layer types a recipe can quantize (torch.ao QAT swaps exactly these).
QUANTIZABLE_TYPES: dict[str, type[nn.Linear] | type[nn.Conv2d]] = {"Linear": nn.Linear, "Conv2d": nn.Conv2d}


@dataclass(frozen=True)
class LayerPlan:
    """What happens to one layer: the resolved specs and which rule decided."""

    name: str
    type_name: str
    weight: QuantSpec | None
    activation: QuantSpec | None
    matched_by: str
    params: int  # all of the layer's own parameters (weight + bias)
    weight_params: int = 0  # the weight alone: what weight bits apply to (biases stay float)

    @property
    def quantized(self) -> bool:
        return self.weight is not None or self.activation is not None

    @property
    def weight_bits(self) -> int | None:
        return self.weight.bits if self.weight else None

    @property
    def activation_bits(self) -> int | None:
        return self.activation.bits if self.activation else None


def quantizable_layers(model: nn.Module) -> dict[str, nn.Linear | nn.Conv2d]:
    """Name -> module for every layer of a quantizable type (including already-prepared QAT ones)."""
    kinds = tuple(QUANTIZABLE_TYPES.values())
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds) and n}


def type_name(m: nn.Module) -> str:
    """The recipe type name of a layer (``Linear``/``Conv2d``, QAT versions included), else its class name."""
    for name, cls in QUANTIZABLE_TYPES.items():
        if isinstance(m, cls):
            return name
    return type(m).__name__


def resolve(model: nn.Module, recipe: Recipe) -> dict[str, LayerPlan]:
    """Per-layer plan for every quantizable layer that a rule or the default reaches.

    Raises :class:`RecipeError` naming every rule that selects nothing, any type rule for a type this
    package cannot quantize, and layers whose parent reads their weight directly (``nn.MultiheadAttention``'s
    ``out_proj``, see :mod:`.opaque`) unless a rule keeps them float.
    """
    layers = quantizable_layers(model)
    all_names = {n for n, _ in model.named_modules()}
    types = [r for r in recipe.rules if r.kind == "type"]

    problems: list[str] = []
    for rule in types:
        if rule.pattern not in QUANTIZABLE_TYPES:
            problems.append(f"{rule.match!r}: unknown type; supported types are {sorted(QUANTIZABLE_TYPES)}")
    for rule in recipe.rules:
        if rule.kind == "exact" and rule.match not in layers:
            hint = "it is not a Linear/Conv2d layer" if rule.match in all_names else "no module has that name"
            problems.append(f"{rule.match!r}: {hint}")
    rules = RuleSet(recipe.rules, recipe.targets)
    problems += rules.problems
    plans: dict[str, LayerPlan] = {}
    for name, mod in layers.items():
        tname = type_name(mod)
        found = rules.select(name, tname)
        if found is not None:
            rule = found
            matched_by = rule.match if rule.kind != "exact" else "exact"
        elif recipe.default is not None and under(name, recipe.targets):
            rule, matched_by = recipe.default, "default"
        else:
            continue
        params = sum(p.numel() for p in mod.parameters(recurse=False))
        wspec = rule.weight
        group = wspec.group_size if wspec is not None else None
        if group and mod.weight[0].numel() % group:
            problems.append(
                f"{name!r} (matched by {matched_by}): per_group weights need inputs per output channel "
                f"divisible by group_size {group}, it has {mod.weight[0].numel()}; give it a rule with "
                "granularity: per_channel (rules override the default) or pick another group_size"
            )
        if wspec is not None and wspec.rounding == "gptq" and not isinstance(mod, nn.Linear):
            problems.append(
                f"{name!r} (matched by {matched_by}): rounding: gptq is implemented for Linear layers, "
                f"not {tname}; give it a rule with rounding: nearest"
            )
        plans[name] = LayerPlan(
            name, tname, rule.weight, rule.activation, matched_by, params, int(mod.weight.numel())
        )

    problems += rules.regex_problems(
        layers,
        matches_none="the regex matches no Linear/Conv2d layer",
        all_claimed="selects no layer (every layer it matches is claimed by an exact-name rule or an earlier "
        "regex; the first matching regex wins)",
    )
    for rule in types:
        if rule.pattern in QUANTIZABLE_TYPES and rule.match not in rules.used:
            problems.append(
                f"{rule.match!r}: selects no layer (no {rule.pattern} under targets {list(recipe.targets)} "
                "that a higher-precedence rule has not claimed)"
            )
    owners = opaque_layers(model)
    hit = [n for n, p in plans.items() if n in owners and p.quantized]
    if hit:
        problems.append(refusal(hit, owners, list(layers)))
    for prefix in recipe.targets:
        if prefix and prefix not in all_names:
            problems.append(f"target {prefix!r}: no module has that name")
    if problems:
        raise RecipeError(
            f"recipe {recipe.name!r} does not fit this model:\n  - "
            + "\n  - ".join(problems)
            + "\nList the layers with `sam2-quant inspect RECIPE --all` and fix or remove these rules."
        )
    return plans
