"""The one timer: round-robin rounds after warm-up, medians, paired ratios (fast, fake clocks)."""

from __future__ import annotations

import pytest

from sam2_quant_plugin import timer


def test_rounds_interleave_after_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    clock = iter(range(1000))
    monkeypatch.setattr(timer.time, "perf_counter", lambda: float(next(clock)))
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    s = timer.interleaved_seconds(fns, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3  # one call of each per round, warm-up round included
    assert s == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def test_summary_and_paired() -> None:
    assert timer.summary_ms([0.001, 0.002, 0.003])["median_ms"] == pytest.approx(2.0)
    seconds, ratio = timer.paired(lambda: None, lambda: sum(range(20000)), repeats=3)
    assert seconds > 0
    assert ratio > 1.0
    assert timer.median_seconds(lambda: None, repeats=1, warmup=0) >= 0
