"""FrozenFakeQuantize: built from learnable and torch.ao fake-quants, exact torch kernels, state_dict."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.errors import CalibrationError
from sam2_quant_plugin.fake_quant import FrozenFakeQuantize, LearnableBitFakeQuantize
from sam2_quant_plugin.torchao_adapter import FakeQuantize


def test_forward_is_torch_fake_quantize_per_channel() -> None:
    scale = torch.tensor([0.1, 0.2, 0.05])
    zp = torch.zeros(3, dtype=torch.int32)
    fq = FrozenFakeQuantize(scale, zp, bits=4, signed=True, narrow_range=True, ch_axis=0)
    assert (fq.quant_min, fq.quant_max) == (-7, 7)
    assert fq.per_channel
    assert fq.qscheme == torch.per_channel_symmetric
    assert fq.dtype == torch.qint8
    x = torch.randn(3, 20)
    assert torch.equal(fq(x), torch.fake_quantize_per_channel_affine(x, scale, zp, 0, -7, 7))
    assert fq(x * 100).abs().max() <= 7 * 0.2 + 1e-6


def test_forward_per_tensor_unsigned_affine() -> None:
    fq = FrozenFakeQuantize(torch.tensor([0.03]), torch.tensor([12]), bits=8, signed=False, symmetric=False)
    assert not fq.per_channel
    assert fq.qscheme == torch.per_tensor_affine
    assert fq.dtype == torch.quint8
    x = torch.randn(50)
    assert torch.equal(fq(x), torch.fake_quantize_per_tensor_affine(x, 0.03, 12, 0, 255))
    fq.disable_fake_quant()
    assert torch.equal(fq(x), x)


def test_single_channel_scale_is_per_tensor() -> None:
    fq = FrozenFakeQuantize(torch.tensor([0.1]), torch.tensor([0]), bits=8, signed=True, ch_axis=0)
    assert not fq.per_channel
    assert fq.ch_axis == -1


def test_no_parameters_and_observer_off() -> None:
    fq = FrozenFakeQuantize(torch.tensor([0.1]), torch.tensor([0]), bits=8, signed=True)
    assert list(fq.parameters()) == []
    assert int(fq.observer_enabled) == 0
    s, z = fq.calculate_qparams()
    assert z.dtype == torch.int32
    assert float(s) == pytest.approx(0.1)


@pytest.mark.parametrize(("bits", "narrow"), [(8, True), (8, False), (3, True), (2, False)])
def test_from_learnable(bits: int, narrow: bool) -> None:
    lfq = LearnableBitFakeQuantize(bits=bits, per_channel=True, narrow_range=narrow)
    w = torch.randn(5, 12)
    lfq(w)
    frozen = FrozenFakeQuantize.from_fake_quant(lfq)
    assert frozen.bits == bits
    assert frozen.narrow_range == narrow
    assert (frozen.quant_min, frozen.quant_max) == (lfq.quant_min, lfq.quant_max)
    assert frozen.scale.shape == (5,)
    with torch.no_grad():
        assert torch.equal(frozen(w), lfq(w))


def test_from_learnable_rounds_learned_bits() -> None:
    lfq = LearnableBitFakeQuantize(bits=8, min_bits=2, max_bits=8, per_channel=False)
    lfq(torch.randn(100))
    with torch.no_grad():
        lfq.bit_offset.fill_(2.6)  # 2 + 2.6 -> 5 bits, not yet synced
    frozen = FrozenFakeQuantize.from_fake_quant(lfq)
    assert frozen.bits == 5
    assert isinstance(frozen.bits, int)
    assert (frozen.quant_min, frozen.quant_max) == (-16, 15)


def test_from_uncalibrated_learnable_raises() -> None:
    with pytest.raises(CalibrationError, match="calibrate"):
        FrozenFakeQuantize.from_fake_quant(LearnableBitFakeQuantize())


@pytest.mark.parametrize(
    ("qmin", "qmax", "dtype", "qscheme", "bits"),
    [
        (0, 255, torch.quint8, torch.per_tensor_affine, 8),
        (-128, 127, torch.qint8, torch.per_tensor_symmetric, 8),
        (-127, 127, torch.qint8, torch.per_tensor_symmetric, 8),  # narrow: 255 codes are still 8 bits
        (0, 15, torch.quint8, torch.per_tensor_affine, 4),
        (-7, 7, torch.qint8, torch.per_tensor_symmetric, 4),
    ],
)
def test_from_torch_ao_fake_quantize(qmin: int, qmax: int, dtype, qscheme, bits: int) -> None:
    ref = FakeQuantize(quant_min=qmin, quant_max=qmax, dtype=dtype, qscheme=qscheme)
    x = torch.randn(300) * 2
    ref(x)
    frozen = FrozenFakeQuantize.from_fake_quant(ref)
    assert frozen.bits == bits
    assert (frozen.quant_min, frozen.quant_max) == (qmin, qmax)
    ref.disable_observer()
    assert torch.equal(frozen(x), ref(x))


def test_state_dict_round_trip_changes_shape() -> None:
    src = FrozenFakeQuantize(torch.rand(6) + 0.01, torch.zeros(6), bits=6, signed=True, ch_axis=0)
    dst = FrozenFakeQuantize(torch.tensor([1.0]), torch.tensor([0]), bits=6, signed=True, ch_axis=0)
    dst.load_state_dict(src.state_dict())
    assert torch.equal(dst.scale, src.scale)
    assert dst.zero_point.dtype == torch.int32
