"""Min-max observer: the exact range (per channel for weights, running union for activations)."""

from __future__ import annotations

from .base import RangeObserver
from .registry import register_observer


@register_observer("minmax")
class MinMaxRangeObserver(RangeObserver):
    """Running min/max. With a per-channel symmetric qscheme: the per-channel symmetric weight observer."""
