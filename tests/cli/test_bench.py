"""``sam2-quant bench`` end to end on tiny SAM 2 at 128 px: variants, timing rows, the Markdown file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam2_quant_plugin.cli.main import main

pytestmark = pytest.mark.slow


def test_bench_writes_doc_and_results(tmp_path: Path) -> None:
    doc = tmp_path / "BENCH.md"
    args = ["bench", "--image-size", "128", "--variants", "float,w8a8,mixed-nbits-fp16", "--repeats", "1"]
    assert main([*args, "--points-per-side", "2", "--out", str(tmp_path), "--doc", str(doc)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((run / "bench.json").read_text())
    rows = result["variants"]
    assert set(rows) == {"float", "w8a8", "mixed-nbits-fp16"}
    assert rows["w8a8"]["encoder_mb"] < rows["float"]["encoder_mb"] / 3
    assert rows["mixed-nbits-fp16"]["encoder_path"].endswith("encoder_fp16.onnx")
    assert rows["mixed-nbits-fp16"]["vs_fake_quant_fused"]["embed_cosine"] > 0.999
    assert all("CPUExecutionProvider_encoder" in r or "cpu_encoder" in r for r in rows.values()), rows[
        "float"
    ].keys()
    text = doc.read_text()
    assert "RANDOM" in text
    assert "| mixed-nbits-fp16 |" in text
