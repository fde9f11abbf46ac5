"""benchmarks/gpu_check.py on a host without a GPU: it refuses with the fix; its MatMulNBits export runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU host runs `make gpu-check` itself")


def test_refuses_without_a_gpu(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "no GPU to check" in caplog.text
    assert not any(tmp_path.iterdir())


def test_nbits_step_exports_2_4_8_bits_and_reports_a_missing_cuda_ep(tmp_path: Path) -> None:
    result = gpu_check.nbits_on_cuda(tmp_path)  # the CPU EP runs; the CUDA session falls back here
    assert result["ok"] is False
    assert "fell back" in result["error"]
    assert (tmp_path / "nbits.onnx").is_file()
