"""The emulated model: exact path = fake-quant; AVX2 path = saturation, only where the weights allow it."""

from __future__ import annotations

import torch

from sam2_quant_plugin.int8 import emulated, host_int8_path
from tests.int8._linear import ln_linear


def test_exact_path_reproduces_fake_quant() -> None:
    model, x = ln_linear(8)
    with torch.no_grad():
        ref = model(x)
        exact = emulated(model, "exact", only_risky=False)(x)
    # same codes up to rare ties (QuantizeLinear divides, torch's kernel multiplies by 1/scale)
    assert float((exact - ref).abs().max()) < 1e-2 * float(ref.abs().max())
    assert float((exact - ref).abs().median()) < 1e-6


def test_avx2_path_saturates_risky_weights_only() -> None:
    risky, x = ln_linear(8)
    safe, x7 = ln_linear(7)
    with torch.no_grad():
        gap = (emulated(risky, "avx2")(x) - emulated(risky, "exact", only_risky=False)(x)).abs().max()
        assert float(gap) > 0.05
        same = emulated(safe, "avx2", only_risky=False)(x7) - emulated(safe, "exact", only_risky=False)(x7)
        assert float(same.abs().max()) == 0.0
        assert torch.equal(emulated(safe, "avx2")(x7), safe(x7))  # nothing risky: left as fake-quant


def test_emulation_leaves_the_model_alone() -> None:
    model, x = ln_linear(8)
    with torch.no_grad():
        before = model(x)
        emulated(model, "avx2")(x)
        assert torch.equal(model(x), before)


def test_host_path_is_read_from_the_kernels() -> None:
    path = host_int8_path()
    assert path.onnxruntime in ("exact", "avx2")
    assert path.torch in ("exact", "avx2")
    assert path.saturates == ("avx2" in (path.onnxruntime, path.torch))
    assert "int8 path" in path.describe()
    assert path.to_dict()["saturates"] == path.saturates
