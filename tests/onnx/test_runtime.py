"""Session creation: CPU EP, and a clear message naming the CUDA provider when it is missing (fast)."""

from __future__ import annotations

import logging

import pytest

from sam2_quant_plugin.onnx import available_eps, make_session, missing_provider_message
from sam2_quant_plugin.onnx.export import export_module
from tests.onnx._models import TinyNet, example

pytestmark = pytest.mark.onnx


def test_cuda_request_names_missing_provider_and_falls_back(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = export_module(
        TinyNet().eval(), (example(),), tmp_path / "f.onnx", input_names=("x",), output_names=("y",)
    )
    if "cuda" in available_eps():
        pytest.skip("CUDA EP present on this host")
    msg = missing_provider_message("cuda")
    assert msg is not None
    assert "CUDAExecutionProvider" in msg
    assert "onnxruntime-gpu" in msg
    with caplog.at_level(logging.WARNING):
        sess = make_session(path, "cuda", threads=1)
    assert sess.get_providers()[0] == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in caplog.text
    assert "falling back" in caplog.text


def test_cpu_is_always_available() -> None:
    assert missing_provider_message("cpu") is None
    assert available_eps()[0] == "cpu"
    with pytest.raises(ValueError, match="provider"):
        make_session("x.onnx", "tpu")
