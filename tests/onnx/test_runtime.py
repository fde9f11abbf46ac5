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
    previous = default_threads() or 0  # a parallel test run sets one per worker
    set_default_threads(0)
    try:
        assert default_threads() is None
        set_default_threads(1)
        assert default_threads() == 1
        assert make_session(path).get_session_options().intra_op_num_threads == 1
        assert make_session(path, threads=2).get_session_options().intra_op_num_threads == 2
        set_default_threads(0)
        assert default_threads() is None
    finally:
        set_default_threads(previous)
    sess = make_session(path.read_bytes(), optimization="disable")
    assert sess.run(None, {"x": example().numpy()})[0].shape[0] == 1
    with pytest.raises(ValueError, match="optimization"):
        make_session(path, optimization="fast")


def test_weight_only_accuracy_level_is_applied_per_call_and_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Level 0 keeps float activations in onnxruntime's own MatMulNBits: PyTorch's numbers; level 4
    (onnxruntime's default) rounds them to int8 per block, so the same file gives other numbers."""
    import torch

    from sam2_quant_plugin.onnx.runtime import default_nbits_accuracy, set_default_nbits_accuracy
    from tests.onnx._models import frozen, mixed_recipe

    model = frozen(mixed_recipe())  # a weight-only 2-bit head: the MatMul onnxruntime rewrites
    x = example(4)
    path = export_module(model, (x,), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    with torch.no_grad():
        want = model(x).numpy()

    def err(sess) -> float:  # type: ignore[no-untyped-def]
        return float(abs(sess.run(None, {"x": x.numpy()})[0] - want).max())

    assert default_nbits_accuracy() is None
    assert err(make_session(path, nbits_accuracy=0)) < 1e-5
    assert err(make_session(path, nbits_accuracy=4)) > 1e-4  # int8 activations: the option does act
    set_default_nbits_accuracy(0)
    try:
        sess = make_session(path)
        assert (
            sess.get_session_options().get_session_config_entry("session.qdq_matmulnbits_accuracy_level")
            == "0"
        )
        assert err(sess) < 1e-5
    finally:
        set_default_nbits_accuracy(None)
    assert default_nbits_accuracy() is None


@pytest.mark.parametrize("level", [5, -1, 2.0, True])
def test_weight_only_accuracy_level_out_of_range_names_the_choices(level) -> None:  # type: ignore[no-untyped-def]
    from sam2_quant_plugin.errors import ConfigError
    from sam2_quant_plugin.onnx.runtime import set_default_nbits_accuracy

    with pytest.raises(ConfigError, match=r"accuracy level .* Fix: pass 0"):
        set_default_nbits_accuracy(level)
    with pytest.raises(ConfigError, match="accuracy level"):
        make_session("x.onnx", nbits_accuracy=level)
