"""Resolve a recipe's attention rules against a model: one :class:`AttentionPlan` per selected module.

Attention modules are the modules whose class ``forward`` calls
``torch.nn.functional.scaled_dot_product_attention`` (read from its source; any model, not only SAM 2).
Precedence, highest first, as for layer rules:

1. exact module name (anywhere in the model);
2. ``re:`` regex, full match (anywhere; among several matching regexes, the first in file order wins);
3. ``type:`` class name, for modules under the recipe's ``targets`` (first in file order wins).

There is no default: attention stays float unless a rule selects it. A rule that selects no attention
module is an error naming the rule, never a silent no-op.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..errors import RecipeError
from .schema import QuantSpec, Recipe
from .selector import RuleSet

SDPA = "scaled_dot_product_attention"


@dataclass(frozen=True)
class AttentionPlan:
    """What happens to one attention module: its q/k/v spec, how probabilities are quantized, which rule."""

    name: str
    type_name: str
    spec: QuantSpec | None
    probs: Literal["fixed", "observed"]
    matched_by: str

    @property
    def quantized(self) -> bool:
        return self.spec is not None

    @property
    def bits(self) -> int | None:
        return self.spec.bits if self.spec else None


_CALLS_SDPA: dict[type, bool] = {}


def _calls_sdpa(cls: type[nn.Module]) -> bool:
    if cls not in _CALLS_SDPA:
        try:
            _CALLS_SDPA[cls] = SDPA in inspect.getsource(cls.forward)
        except (OSError, TypeError):  # no source (compiled, REPL): cannot tell, so not a candidate
            _CALLS_SDPA[cls] = False
    return _CALLS_SDPA[cls]


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module for every module whose ``forward`` calls ``F.scaled_dot_product_attention``."""
    return {n: m for n, m in model.named_modules() if n and _calls_sdpa(type(m))}


def resolve_attention(model: nn.Module, recipe: Recipe) -> dict[str, AttentionPlan]:
    """Per-module plan for every attention module a rule selects (float exclusions included).

    Raises :class:`RecipeError` naming every attention rule that selects nothing.
    """
    if not recipe.attention:
        return {}
    mods = attention_modules(model)
    names = dict(model.named_modules())
    rules = RuleSet(recipe.attention, recipe.targets)
    problems = list(rules.problems)
    for name in rules.exact:
        if name not in names:
            problems.append(f"{name!r}: no module has that name")
        elif name not in mods:
            problems.append(
                f"{name!r}: it is a {type(names[name]).__name__}, whose forward does not call "
                f"torch.nn.functional.{SDPA}"
            )
    plans: dict[str, AttentionPlan] = {}
    for name, mod in mods.items():
        tname = type(mod).__name__
        rule = rules.select(name, tname)
        if rule is None:
            continue
        matched_by = "exact" if rule.kind == "exact" else rule.match
        plans[name] = AttentionPlan(name, tname, rule.spec, rule.probs, matched_by)
    problems += rules.regex_problems(
        mods,
        matches_none="the regex matches no attention module",
        all_claimed="selects no attention module (every one it matches is claimed by an exact-name rule or "
        "an earlier regex)",
    )
    for rule in rules.types:
        if rule.match not in rules.used:
            problems.append(
                f"{rule.match!r}: selects no attention module (no {rule.pattern} calling {SDPA} under "
                f"targets {list(recipe.targets)} that a higher-precedence rule has not claimed)"
            )
    if problems:
        found = sorted({type(m).__name__ for m in mods.values()})
        raise RecipeError(
            f"recipe {recipe.name!r}: attention rules do not fit this model:\n  - "
            + "\n  - ".join(problems)
            + f"\nAttention modules are those whose forward calls torch.nn.functional.{SDPA} "
            f"({len(mods)} here, types {found}); list them with `sam2-quant inspect RECIPE --all` and fix "
            "or remove these rules."
        )
    return plans
