"""benchmarks/gpu_check.py on a host without a GPU: it refuses with the fix; its MatMulNBits export runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from sam2_quant_plugin.cli.main import build_parser
from sam2_quant_plugin.eval.baselines.registry import unknown_bench_names

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


def test_its_commands_parse_here_so_a_lent_gpu_is_not_spent_on_a_typo(tmp_path: Path) -> None:
    """The GPU is lent for minutes: each CLI call the check makes must parse, and bench must know its
    variants, before it gets there."""
    ckpt = ["--checkpoint", str(tmp_path / "sam2.1_hiera_tiny.pt")]
    for argv in (gpu_check.cdpq_argv(tmp_path, 1024, ckpt), gpu_check.bench_argv(tmp_path, 1024, [])):
        args = build_parser().parse_args(argv)
        assert args.image_size == 1024
    assert build_parser().parse_args(gpu_check.cdpq_argv(tmp_path, 1024, [])).device == "cuda"
    assert unknown_bench_names(gpu_check.CUDA_VARIANTS.split(",")) == []
