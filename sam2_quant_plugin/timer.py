"""The package's one timer: callables run round-robin (one call of each per round) after warm-up rounds;
figures are medians over the timed rounds.

On a shared machine the load changes over minutes; interleaving exposes every callable to the same load, so
their medians (and per-round ratios) compare fairly even when absolute numbers drift. ``sam2-quant bench``,
``validate`` and ``eval`` and the scripts in ``benchmarks/`` all time through :func:`interleaved_seconds`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np


def interleaved_seconds(
    fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds of each call of each ``fns`` value over ``repeats`` rounds, after ``warmup`` untimed rounds.

    Each round calls every function once, in the mapping's order.
    """
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                seconds[k].append(time.perf_counter() - t0)
    return seconds


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile of ``seconds``, in milliseconds (a ValueError when it is empty)."""
    if len(seconds) == 0:
        raise ValueError(
            "no timed runs to summarise (repeats was 0). Fix: time at least one run (repeats >= 1)."
        )
    ms = [s * 1e3 for s in seconds]
    q = np.percentile(ms, [10, 90])
    return {"median_ms": statistics.median(ms), "p10_ms": float(q[0]), "p90_ms": float(q[1])}


def median_seconds(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    return statistics.median(interleaved_seconds({"fn": fn}, repeats=repeats, warmup=warmup)["fn"])


def paired(
    run_ref: Callable[[], object], run_new: Callable[[], object], *, repeats: int = 3, warmup: int = 1
) -> tuple[float, float]:
    """``(median seconds of run_new, median of per-round ratios new/ref)``, the two interleaved.

    Each ratio compares runs a moment apart, so load from other jobs on a shared host mostly cancels.
    """
    s = interleaved_seconds({"ref": run_ref, "new": run_new}, repeats=repeats, warmup=warmup)
    ratios = [new / ref for ref, new in zip(s["ref"], s["new"])]
    return statistics.median(s["new"]), statistics.median(ratios)
