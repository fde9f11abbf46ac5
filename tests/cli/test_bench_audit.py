"""``sam2-quant bench``'s graph audit and encoder passes on a small model's ONNX files (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2_quant_plugin.cli.bench_audit import audit_markdown, audit_variants, reference_of
from sam2_quant_plugin.cli.bench_cmd import _encoder_pass
from sam2_quant_plugin.eval.baselines.registry import BENCH_METHODS, bench_methods
from sam2_quant_plugin.onnx.export import export_module
from sam2_quant_plugin.onnx.fp16 import to_fp16
from tests.onnx._models import TinyNet, example

pytestmark = pytest.mark.onnx


@pytest.fixture
def rows(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    src = export_module(
        TinyNet().eval(), (example(),), tmp_path / "encoder.onnx", input_names=("x",), output_names=("y",)
    )
    half = to_fp16(src, tmp_path / "encoder_fp16.onnx")
    rtn = _encoder_pass("ort-rtn-g32", half)
    return {
        "float": {"encoder_path": str(src), "fp16": False},
        "float-fp16": {"encoder_path": str(half), "fp16": True},
        "ort-rtn-int4-g32": {"encoder_path": str(rtn), "fp16": True},
    }


def test_every_variant_names_a_known_pass() -> None:
    specs = {k: m.bundle for k, m in bench_methods(BENCH_METHODS).items()}
    assert all(spec is not None for spec in specs.values())
    assert {spec.encoder_pass for spec in specs.values() if spec} == {None, "ort-rtn-g32"}
    assert specs["ort-rtn-int4-g32"].fp16  # type: ignore[union-attr]  # applied to the fp16 encoder
    with pytest.raises(ValueError, match="unknown encoder pass"):
        _encoder_pass("gptq", Path("encoder.onnx"))


def test_rows_are_audited_against_the_float_graph_of_their_precision(rows: dict) -> None:  # type: ignore[type-arg]
    assert Path(rows["ort-rtn-int4-g32"]["encoder_path"]).name == "encoder_fp16_ort_rtn.onnx"
    audit_variants(rows)
    assert "encoder_audit" not in rows["float"]
    assert "encoder_audit" not in rows["float-fp16"]
    audit = rows["ort-rtn-int4-g32"]["encoder_audit"]
    assert audit["reference"] == "float-fp16"
    assert audit["same_structure"] is True
    assert audit["matmulnbits"] == {"4-bit b32 float16": 3}
    # fp16 against float32 is not the same graph: the converter adds Casts at the float32 input/output
    rows["float-fp16"]["fp16"] = False
    audit_variants(rows)
    assert rows["float-fp16"]["encoder_audit"]["reference"] == "float"
    assert rows["float-fp16"]["encoder_audit"]["extra"]["Cast"] >= 2
    text = "\n".join(audit_markdown(rows))
    assert "| ort-rtn-int4-g32 | float-fp16 | 3 x 4-bit b32 float16 | none | none |" in text
    assert "| float-fp16 | float | none | Cast +" in text
    assert "Nodes of `float-fp16` beyond `float`" in text


def test_no_reference_no_audit(rows: dict) -> None:  # type: ignore[type-arg]
    del rows["float-fp16"]
    audit_variants(rows)
    assert all("encoder_audit" not in r for r in rows.values())
    assert audit_markdown(rows) == []
    assert reference_of({"fp16": True}) == "float-fp16"
    assert reference_of({}) == "float"
