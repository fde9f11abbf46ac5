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


def test_one_factory_one_vocabulary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Threads: per call, else the process default (eval's --threads); a serialized model loads too."""
    from sam2_quant_plugin.onnx.runtime import default_threads, set_default_threads

    path = export_module(
        TinyNet().eval(), (example(),), tmp_path / "f.onnx", input_names=("x",), output_names=("y",)
    )
    assert default_threads() is None
    set_default_threads(1)
    try:
        assert default_threads() == 1
        assert make_session(path).get_session_options().intra_op_num_threads == 1
        assert make_session(path, threads=2).get_session_options().intra_op_num_threads == 2
    finally:
        set_default_threads(0)
    assert default_threads() is None
    sess = make_session(path.read_bytes(), optimization="disable")
    assert sess.run(None, {"x": example().numpy()})[0].shape[0] == 1
    with pytest.raises(ValueError, match="optimization"):
        make_session(path, optimization="fast")
