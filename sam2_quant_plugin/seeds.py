"""The seeds this package accepts: whole numbers torch's generators take, with room for derived seeds."""

from __future__ import annotations

from typing import Any

#: exclusive bound: ``torch.manual_seed`` takes up to 2**64 - 1, and samplers derive seeds by adding offsets
MAX_SEED = 1 << 63
SEED_FIX = f"Fix: pass a whole number in 0..{MAX_SEED - 1}, e.g. 0."


def seed_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable seed (a phrase), or None when it is one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"seed {value!r:.40} is not a whole number"
    if not 0 <= value < MAX_SEED:
        return f"seed {value} is outside 0..{MAX_SEED - 1} (torch's generators cannot take it)"
    return None
