"""The kernel model reproduces onnxruntime's fused int8 Linear bit for bit: on this CPU's own int8 path,
and on an AVX2 CPU run through ``qemu-x86_64 -cpu Haswell`` (so the AVX2 kernel is checked on any host)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import pytest

from sam2_quant_plugin.int8 import emulated_linear, host_int8_path
from sam2_quant_plugin.onnx import make_session
from tests.int8._linear import TOKENS, N, export, ln_linear, spec_and_input

pytestmark = pytest.mark.onnx
QEMU = shutil.which("qemu-x86_64")
RUNNER = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.log_severity_level = 3
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
np.save(sys.argv[3], s.run(None, {"x": np.load(sys.argv[2])})[0])
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("ln_linear")
    model, x = ln_linear(8)
    path = export(model, x, d / "m.onnx")
    np.save(d / "x.npy", x.numpy())
    spec, h = spec_and_input(model, x)
    expect = {p: emulated_linear(spec, h, p).reshape(1, TOKENS, N) for p in ("exact", "avx2")}
    assert spec.risky_pairs > 0  # uniform 8-bit weights: the two paths really differ
    assert np.abs(expect["exact"] - expect["avx2"]).max() > 0.05 * np.abs(expect["exact"]).max()
    return d, path, x, expect


def test_the_linear_runs_on_an_int8_kernel(exported, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, path, _, _ = exported
    make_session(path, optimized_model_path=tmp_path / "opt.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["MatMulIntegerToFloat"] == 1, ops


def test_host_fused_output_equals_the_kernel_model_of_the_host_path(exported) -> None:  # type: ignore[no-untyped-def]
    _, path, x, expect = exported
    host = host_int8_path().onnxruntime
    assert host in ("exact", "avx2")
    got = make_session(path).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, expect[host], rtol=0, atol=1e-6)
    other = "avx2" if host == "exact" else "exact"
    assert np.abs(got - expect[other]).max() > 0.05


def test_avx2_cpu_fused_output_equals_the_avx2_kernel_model(exported) -> None:  # type: ignore[no-untyped-def]
    """The real MLAS AVX2 kernel, whatever CPU runs the suite: emulated by qemu as a Haswell (no VNNI)."""
    d, path, _, expect = exported
    if QEMU is None and host_int8_path().onnxruntime != "avx2":  # an AVX2 host runs the real kernel itself
        if os.environ.get("SAM2Q_REQUIRE_QEMU"):
            pytest.fail("qemu-x86_64 is required here (SAM2Q_REQUIRE_QEMU is set): apt-get install qemu-user")
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user); this CPU has VNNI")
    out = d / "y_haswell.npy"
    cmd = [sys.executable, "-c", RUNNER, str(path), str(d / "x.npy"), str(out)]
    if QEMU is not None:
        cmd = [QEMU, "-cpu", "Haswell", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    np.testing.assert_allclose(np.load(out), expect["avx2"], rtol=0, atol=1e-6)
