"""Weight-only layers as deployed: onnxruntime's own rewrites of them, and the same numbers on an AVX2 CPU.

onnxruntime (1.32) turns a weight-only ``DequantizeLinear -> MatMul`` into its ``MatMulNBits`` kernel, which
rounds activations to int8 per block (``session.qdq_matmulnbits_accuracy_level``, default 4): integer
arithmetic the file never asked for, so it is checked here to give the same output on a CPU without VNNI
(``qemu-x86_64 -cpu Haswell``) as on this one. Weight-only convs are folded to float at load (load_fold).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import pytest

from sam2_quant_plugin.int8 import host_int8_path
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_module
from tests.int8.test_ort_kernels import QEMU, RUNNER
from tests.onnx._models import example, frozen, mixed_recipe

pytestmark = pytest.mark.onnx


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):  # type: ignore[no-untyped-def]
    """TinyNet with a weight-only conv stem, two W+A Linears and a weight-only 2-bit head, int8 codes."""
    d = tmp_path_factory.mktemp("weight_only")
    model = frozen(mixed_recipe())
    path = export_module(model, (example(4),), d / "m.onnx", input_names=("x",), output_names=("y",))
    np.save(d / "x.npy", example(4).numpy())
    return d, path


def test_onnxruntime_rewrites_the_weight_only_linear_and_folds_the_conv(mixed_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, path = mixed_file
    make_session(path, optimized_model_path=tmp_path / "opt.onnx")
    optimized = onnx.load(str(tmp_path / "opt.onnx"))
    ops = Counter(n.op_type for n in optimized.graph.node)
    assert ops["MatMulIntegerToFloat"] == 2, ops  # fc1, fc2: quantized inputs
    assert ops["MatMulNBits"] == 1, ops  # head: weight-only, rewritten by onnxruntime itself
    assert ops["DequantizeLinear"] == 0, ops  # the stem conv's weight: a float constant after load
    assert ops["Cast"] == 0, ops


def test_weight_only_file_gives_the_same_numbers_on_an_avx2_cpu(mixed_file) -> None:  # type: ignore[no-untyped-def]
    d, path = mixed_file
    if host_int8_path().onnxruntime == "avx2":
        pytest.skip("this CPU is itself the AVX2 case; the comparison needs a VNNI host")
    if QEMU is None:
        if os.environ.get("SAM2Q_REQUIRE_QEMU"):
            pytest.fail("qemu-x86_64 is required here (SAM2Q_REQUIRE_QEMU is set): apt-get install qemu-user")
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user)")
    here = make_session(path).run(None, {"x": np.load(d / "x.npy")})[0]
    out = d / "y_haswell.npy"
    cmd = [QEMU, "-cpu", "Haswell", sys.executable, "-c", RUNNER, str(path), str(d / "x.npy"), str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    np.testing.assert_allclose(np.load(out), here, rtol=0, atol=1e-5)
