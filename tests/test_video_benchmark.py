"""benchmarks/video_latency.py: every bundle's graphs are timed and the frame sums them (64 px, slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import video_latency
from tests._utils import torch_threads


@pytest.mark.slow
@pytest.mark.onnx
def test_video_latency_times_each_graph_of_each_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["video_latency", "--image-size", "64", "--recipes", "w8a8_video_attn", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--threads", "1", "--out", str(tmp_path)])
    with torch_threads(1):
        video_latency.main()
    (run,) = tmp_path.iterdir()
    r = json.loads((run / "results.json").read_text())
    assert set(r["frame_ms"]) == {"float", "w8a8_video_attn"}
    for b, total in r["frame_ms"].items():
        assert total == pytest.approx(sum(r["median_ms"][f"{b}/{g}"] for g in video_latency.FRAME))
    ops = r["memory_attention_ops"]
    # the recipe's attention products and Linears run on integer kernels; the float graph has none
    assert ops["w8a8_video_attn"].get("MatMulIntegerToFloat", 0) > 16
    assert not ops["float"].get("MatMulIntegerToFloat", 0)
    assert "RANDOM INIT" in (run / "results.md").read_text()
