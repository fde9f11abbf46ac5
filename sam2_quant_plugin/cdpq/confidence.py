"""Confidence heuristics over a layer's distillation-loss history, registered by name.

Each returns a score; lower means "more confident this layer tolerates fewer bits", so candidates are
tried in ascending order. Register more with :func:`register`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

Heuristic = Callable[[Sequence[float]], float]
_REGISTRY: dict[str, Heuristic] = {}


def register(name: str) -> Callable[[Heuristic], Heuristic]:
    def deco(fn: Heuristic) -> Heuristic:
        _REGISTRY[name] = fn
        return fn

    return deco


def get_heuristic(name: str) -> Heuristic:
    if name not in _REGISTRY:
        raise KeyError(f"unknown confidence heuristic {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def heuristics() -> list[str]:
    return sorted(_REGISTRY)


@register("mean")
def mean_loss(history: Sequence[float]) -> float:
    """Average loss: layers the student already matches well go first."""
    return statistics.fmean(history) if history else float("inf")


@register("mean+variance")
def mean_plus_variance(history: Sequence[float]) -> float:
    """Mean plus standard deviation: an unstable loss counts against the layer."""
    if not history:
        return float("inf")
    return statistics.fmean(history) + (statistics.pstdev(history) if len(history) > 1 else 0.0)


@register("trend")
def trend(history: Sequence[float]) -> float:
    """Mean plus the least-squares slope per step (times the history length): a falling loss helps."""
    n = len(history)
    if n == 0:
        return float("inf")
    if n == 1:
        return history[0]
    xs = range(n)
    mx, my = (n - 1) / 2, statistics.fmean(history)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, history)) / sum((x - mx) ** 2 for x in xs)
    return my + slope * n


def order_candidates(
    histories: dict[str, Sequence[float]],
    candidates: Sequence[str],
    heuristic: str = "mean",
    sensitivity: dict[str, float] | None = None,
    sensitivity_weight: float = 1.0,
) -> list[tuple[str, float]]:
    """Candidates with their scores, ascending; scores are rank-normalised to [0, 1] per signal and
    summed (confidence + ``sensitivity_weight`` x sensitivity), so the two scales never need tuning.
    """
    conf = confidence_scores(histories, candidates, heuristic)
    score = _ranks(conf)
    if sensitivity:
        sens = _ranks({n: sensitivity.get(n, 0.0) for n in candidates})
        score = {n: score[n] + sensitivity_weight * sens[n] for n in candidates}
    return sorted(((n, score[n]) for n in candidates), key=lambda kv: (kv[1], kv[0]))


def confidence_scores(
    histories: dict[str, Sequence[float]], candidates: Sequence[str], heuristic: str = "mean"
) -> dict[str, float]:
    """Each candidate's raw confidence score under ``heuristic`` (lower: tried first)."""
    fn = get_heuristic(heuristic)
    return {n: fn(histories.get(n, ())) for n in candidates}


def _ranks(values: dict[str, float]) -> dict[str, float]:
    order = sorted(values, key=lambda n: (values[n], n))
    denom = max(len(order) - 1, 1)
    return {n: i / denom for i, n in enumerate(order)}
