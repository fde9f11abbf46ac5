"""``sam2-quant bench`` end to end on tiny SAM 2 at 128 px: variants, timing rows, the Markdown file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam2_quant_plugin.cli.main import main

pytestmark = pytest.mark.slow


def test_bench_writes_doc_and_results(tmp_path: Path) -> None:
    doc = tmp_path / "BENCH.md"
    # former bench names (aliases) and registry names mixed: the rows carry the registry (eval) names
    variants = "float,fp16,ours-w8a8-ort,mixed-nbits-fp16,ours-w4-g32-nbits-fp16-ort,ort-rtn-int4-fp16"
    args = ["bench", "--image-size", "128", "--variants", variants, "--repeats", "1"]
    assert main([*args, "--points-per-side", "2", "--out", str(tmp_path), "--doc", str(doc)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((run / "bench.json").read_text())
    rows = result["variants"]
    assert list(rows) == [
        "float",
        "float-fp16",
        "ours-w8a8-ort",
        "ours-mixed-nbits-fp16-ort",
        "ours-w4-g32-nbits-fp16-ort",
        "ort-rtn-int4-g32",
    ]
    assert rows["ours-w8a8-ort"]["encoder_mb"] < rows["float"]["encoder_mb"] / 3
    mixed = rows["ours-mixed-nbits-fp16-ort"]
    assert mixed["encoder_path"].endswith("encoder_fp16.onnx")
    assert mixed["vs_fake_quant_fused"]["embed_cosine"] > 0.999
    assert all("CPUExecutionProvider_encoder" in r or "cpu_encoder" in r for r in rows.values()), rows[
        "float"
    ].keys()
    # onnxruntime's RTN baseline: the fp16 float encoder with 4-bit MatMulNBits, the fp16 float decoder
    rtn = rows["ort-rtn-int4-g32"]
    assert rtn["encoder_path"].endswith("encoder_fp16_ort_rtn.onnx")
    assert rtn["decoder_path"].endswith("decoder_fp16.onnx")
    assert rtn["encoder_mb"] < rows["float-fp16"]["encoder_mb"] / 3
    assert 0.9 < rtn["vs_float_fused"]["embed_cosine"] < 0.9999
    # the graph audit: each encoder against the float encoder of its precision
    assert "encoder_audit" not in rows["float"]
    assert "encoder_audit" not in rows["float-fp16"]
    assert rows["ours-w8a8-ort"]["encoder_audit"]["reference"] == "float"
    assert rows["ours-w8a8-ort"]["encoder_audit"]["extra"]["QuantizeLinear"] > 0
    audit = rtn["encoder_audit"]
    assert audit["reference"] == "float-fp16"
    assert audit["same_structure"] is True
    assert audit["matmulnbits"] == {"4-bit b32 float16": 51}
    ours = mixed["encoder_audit"]
    assert ours["reference"] == "float-fp16"
    assert sum(ours["matmulnbits"].values()) == 51
    assert ours["missing"] == {}
    assert ours["same_structure"] is True, ours  # conv weights folded to fp16: nothing beyond fp16 float
    g32 = rows["ours-w4-g32-nbits-fp16-ort"]["encoder_audit"]
    assert g32["matmulnbits"] == {"4-bit b32 float16": 51}  # the same kernels as onnxruntime's graph
    assert g32["same_structure"] is True
    text = doc.read_text()
    assert "RANDOM" in text
    assert "| ours-mixed-nbits-fp16-ort |" in text
    assert "| ort-rtn-int4-g32 | float-fp16 | 51 x 4-bit b32 float16 | none | none |" in text
