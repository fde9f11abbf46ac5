"""Probe ordering: each candidate dropped alone, ranked by loss rise per byte saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2_quant_plugin.cdpq import run_cdpq
from sam2_quant_plugin.cdpq.artifacts import read_jsonl
from sam2_quant_plugin.cdpq.config import CDPQConfig
from sam2_quant_plugin.cdpq.probe import PROBES, bytes_saved

from .toy import toy_config, toy_session_kw


def test_bytes_saved_counts_storage() -> None:
    assert bytes_saved(1000, 8, 6, "packed") == 250
    assert bytes_saved(1000, 8, 6, "onnx") == 0  # both stored as int8
    assert bytes_saved(1000, 8, 4, "onnx") == 500
    assert bytes_saved(1000, 4, 2, "onnx") == 0  # both INT4


def test_probe_orders_attempts_by_rise_per_byte(tmp_path: Path) -> None:
    cfg = toy_config(order_by="probe", ladder=(8, 4), rounds=0, impact_threshold=1e9, target_bytes=1000)
    summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    run = Path(summary["run_dir"])
    probes = [p for p in read_jsonl(run / PROBES) if p["pass"] == 1]
    assert {p["layer"] for p in probes} == set(summary["bits"])  # every candidate probed once
    for p in probes:
        assert p["score"] == pytest.approx(p["rise"] / (p["bytes_saved"] / 1e6))
    expected = [p["layer"] for p in sorted(probes, key=lambda p: (p["score"], p["layer"]))]
    attempts = [a["layer"] for a in read_jsonl(run / "attempts.jsonl") if a["pass"] == 1]
    assert attempts == expected[: len(attempts)]
    # a probe rolls back: the first attempt's reference loss is the untouched student's
    first = read_jsonl(run / "attempts.jsonl")[0]
    assert first["rise"] == pytest.approx(probes[[p["layer"] for p in probes].index(first["layer"])]["rise"])
    assert summary["stop_reason"] == "budget reached"


def test_order_by_is_checked() -> None:
    with pytest.raises(ValueError, match="order_by='random'"):
        CDPQConfig(order_by="random")
