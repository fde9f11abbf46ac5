"""The layer-count sweep's pure parts: block prefixes, the line fit, the table."""

from __future__ import annotations

import pytest

from benchmarks.cdpq_scaling import block_roots, fit_line, markdown


def test_block_roots_are_module_prefixes() -> None:
    assert block_roots(2) == ("image_encoder.trunk.blocks.0", "image_encoder.trunk.blocks.1")
    assert block_roots(0) == ()


def test_fit_line_recovers_a_line_and_scores_a_curve() -> None:
    a, b, r2 = fit_line([1, 2, 3, 4], [3, 5, 7, 9])
    assert (a, b, r2) == pytest.approx((2.0, 1.0, 1.0))
    _, _, r2_sq = fit_line([1, 2, 3, 4, 5, 6], [1, 4, 9, 16, 25, 36])
    assert r2_sq < 0.99  # a quadratic is not called linear


def test_markdown_lists_every_run() -> None:
    rows = [
        {
            "blocks": k,
            "layers": 4 * k,
            "attempts": 8 * k,
            "attempts_per_layer": 2.0,
            "search_seconds": k,
            "seconds_per_attempt": 0.1,
        }
        for k in (1, 2)
    ]
    fit = {"slope": 2.0, "intercept": 0.0, "r2": 1.0}
    result = {
        "config": "t",
        "image_size": 64,
        "weights": "random",
        "ladder": [8, 4],
        "order_by": "probe",
        "target_avg_bits": 4.0,
        "rows": rows,
        "fits": {"attempts": fit, "search_seconds": fit},
    }
    md = markdown(result)
    assert "| 2 | 8 | 16 | 2.00 |" in md
    assert "attempts = 2.000 x layers + 0.00 (R^2 1.000)" in md
