from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sam2_quant_plugin.cdpq import build_session, compute_sensitivity, importance_from, run_cdpq
from sam2_quant_plugin.cdpq.budget import budget_met
from sam2_quant_plugin.cdpq.differentiable import clamp_offsets, project_to_budget
from sam2_quant_plugin.cdpq.sensitivity import cached_sensitivity
from sam2_quant_plugin.cdpq.student import set_layer_bits, weight_quantizers

from .toy import toy_config, toy_session_kw


@pytest.mark.parametrize("metric", ["grad_norm", "fisher", "hutchinson"])
def test_sensitivity_metrics(metric: str) -> None:
    s = build_session(toy_config(), **toy_session_kw())
    for n in s.candidates:
        set_layer_bits(s.student, n, 3)  # a coarse student: non-zero loss and gradients
    sens = compute_sensitivity(s.student, s.cache, s.task, s.val, s.cfg.weights, metric, progress=False)
    assert set(sens) == set(s.candidates)
    assert all(v == v for v in sens.values())  # finite
    if metric != "hutchinson":
        assert all(v >= 0 for v in sens.values())
        assert max(sens.values()) > 0
    imp = importance_from(sens)
    assert min(imp.values()) > 0
    assert sum(imp.values()) / len(imp) == pytest.approx(1.0, rel=0.2)


def test_sensitivity_cache(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, float]:
        calls.append(1)
        return {"a": 1.0}

    assert cached_sensitivity(tmp_path / "s.json", "fisher", compute) == {"a": 1.0}
    assert cached_sensitivity(tmp_path / "s.json", "fisher", compute) == {"a": 1.0}
    assert len(calls) == 1
    cached_sensitivity(tmp_path / "s.json", "grad_norm", compute)
    assert len(calls) == 2


def test_search_with_sensitivity_writes_cache(tmp_path: Path) -> None:
    summary = run_cdpq(
        toy_config(sensitivity="fisher", rounds=0), tmp_path, progress=False, **toy_session_kw()
    )
    assert (Path(summary["run_dir"]) / "sensitivity_fisher.json").is_file()


def test_differentiable_lowers_bits_and_clamps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = toy_config(mode="differentiable", bit_lambda=5.0, bit_lr=3.0, diff_epochs=10)
    with caplog.at_level(logging.WARNING):
        summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    assert summary["mode"] == "differentiable"
    assert summary["size"]["avg_weight_bits"] < 8
    assert all(2 <= b <= 8 for b in summary["bits"].values())
    assert summary["stuck_at_bound"]  # lambda this large drives bits onto the lower bound
    assert "at a bound" in caplog.text


def test_clamp_offsets_keeps_range() -> None:
    s = build_session(toy_config(mode="differentiable"), **toy_session_kw())
    fq = next(iter(weight_quantizers(s.student).values()))
    fq.bit_offset.data.fill_(42.0)
    clamp_offsets(s.student)
    assert float(fq.bit_offset.detach()) == fq.max_bits - fq.min_bits


def test_differentiable_defaults_move_bits_to_a_budget(tmp_path: Path) -> None:
    """Default bit_lr and bit_lambda, two batches x 4 epochs (8 steps): the bits fall to the budget."""
    cfg = toy_config(mode="differentiable", target_avg_bits=5.0)
    summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    assert summary["bit_lr"] == pytest.approx(2 * 6 / (cfg.diff_epochs * 2))
    assert summary["budget_met"] is True
    assert summary["size"]["avg_weight_bits"] <= 5.0
    assert max(summary["bits"].values()) < 8


def test_differentiable_stuck_at_the_top_says_which_value_moves_bits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = toy_config(mode="differentiable", bit_lambda=1e-9, bit_lr=1e-4, diff_epochs=2)
    with caplog.at_level(logging.WARNING):
        summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    assert set(summary["bits"].values()) == {8}
    assert "--target-bits" in caplog.text
    assert "--bit-lr above" in caplog.text
    assert summary["budget_met"] is None


def test_a_run_that_ends_above_its_budget_is_projected_onto_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bits that barely move (tiny bit_lr, one epoch) miss a 6-bit budget; the projection meets it."""
    cfg = toy_config(mode="differentiable", target_avg_bits=6.0, bit_lr=1e-6, bit_lambda=1e-9, diff_epochs=1)
    with caplog.at_level(logging.WARNING):
        summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    assert summary["budget_met"] is True
    assert summary["size"]["avg_weight_bits"] <= 6.0
    assert summary["projected_to_budget"]
    assert "lowered one bit each" in caplog.text


def test_projection_lowers_the_layer_closest_to_rounding_down_first() -> None:
    s = build_session(toy_config(mode="differentiable", target_avg_bits=7.9), **toy_session_kw())
    fqs = weight_quantizers(s.student)
    names = list(fqs)
    for fq in fqs.values():  # every layer at 8 bits, far from its rounding point (7.5) ...
        fq.bit_offset.data.fill_(float(fq.max_bits - fq.min_bits))
    fqs[names[-1]].bit_offset.data.fill_(7.6 - fqs[names[-1]].min_bits)  # ... but the last one: 7.6 -> 8
    lowered = project_to_budget(s)
    assert lowered[0] == names[-1]
    assert fqs[names[-1]].bits == 7
    assert budget_met(s)
    assert project_to_budget(s) == []  # nothing to do once met
