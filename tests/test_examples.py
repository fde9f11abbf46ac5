"""Every example runs in CI in a tiny setting, so none goes stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_qat_training_loop_example(tmp_path: Path) -> None:
    out = tmp_path / "learned.yaml"
    proc = _run("qat_training_loop.py", "--steps", "2", "--image-size", "128", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    recipe = yaml.safe_load(out.read_text())
    assert len(recipe["rules"]) == 56
    assert all(2 <= r["weight"]["bits"] <= 8 for r in recipe["rules"])
    assert "RANDOM-INIT" in proc.stderr


@pytest.mark.slow
def test_export_and_infer_onnx_example(tmp_path: Path) -> None:
    proc = _run("export_and_infer_onnx.py", "--image-size", "128", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (bundle,) = tmp_path.iterdir()
    assert {"encoder.onnx", "decoder.onnx", "manifest.json", "truck_mask.png"} <= {
        p.name for p in bundle.iterdir()
    }


@pytest.mark.slow
def test_cdpq_to_cuda_onnx_example(tmp_path: Path) -> None:
    proc = _run("cdpq_to_cuda_onnx.py", "--image-size", "128", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = tmp_path.iterdir()
    assert {"encoder.onnx", "encoder_fp16.onnx", "decoder_fp16.onnx", "manifest.json"} <= {
        p.name for p in (run / "onnx").iterdir()
    }
    (search,) = [p for p in run.iterdir() if p.name.endswith("_example")]
    assert (search / "recipe.yaml").is_file()
    assert (search / "probes.jsonl").is_file()
    assert "group_size: 32" in (search / "recipe.yaml").read_text()  # group-wise Linears by default
    assert "fp16 ONNX" in proc.stderr
    assert "RANDOM-INIT" in proc.stderr


@pytest.mark.slow
def test_any_model_resnet_vit_example(tmp_path: Path) -> None:
    proc = _run("any_model_resnet_vit.py", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = tmp_path.iterdir()
    assert {"resnet18.onnx", "vit.onnx", "resnet18.pt", "vit.pt"} <= {p.name for p in run.iterdir()}
    assert "without the exclusion rule" in proc.stderr
    assert "nn.MultiheadAttention" in proc.stderr
    for name in ("resnet18", "vit"):
        line = next(ln for ln in proc.stderr.splitlines() if f"any_model_example: {name}:" in ln)
        assert float(line.split("onnxruntime_vs_torch ")[1].split(",")[0]) < 0.05, line
