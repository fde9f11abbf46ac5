"""LearnableBitFakeQuantize: bit offset, gradients, set_bits, flags, checkpoints, torch.ao convert."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from sam2_quant_plugin.errors import CalibrationError
from sam2_quant_plugin.fake_quant import FrozenFakeQuantize, LearnableBitFakeQuantize
from sam2_quant_plugin.observers import MinMaxRangeObserver, MSEClipObserver
from sam2_quant_plugin.torchao_adapter import FakeQuantize, ao_convert, ao_prepare_qat, build_qconfig
from tests._utils import make_tiny_sam2_like, tiny_input

# (signed, symmetric, per_channel)
KINDS = [(True, True, True), (True, True, False), (False, False, False), (False, False, True)]


def make_fq(
    signed: bool = True, symmetric: bool = True, per_channel: bool = True, **kw
) -> LearnableBitFakeQuantize:
    kw.setdefault("bits", 4)
    return LearnableBitFakeQuantize(signed=signed, symmetric=symmetric, per_channel=per_channel, **kw)


def calibrated(fq: LearnableBitFakeQuantize, x: torch.Tensor) -> LearnableBitFakeQuantize:
    with torch.no_grad():
        fq(x)
    fq.disable_observer()
    return fq


def data(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 32, generator=g) * torch.linspace(0.2, 2.0, 8)[:, None]


def test_bits_is_an_offset_above_min() -> None:
    fq = LearnableBitFakeQuantize(bits=5, min_bits=3, max_bits=8)
    assert float(fq.bit_offset.detach()) == 2.0
    assert fq.bits == 5
    assert (fq.quant_min, fq.quant_max) == (-16, 15)
    with torch.no_grad():
        fq.bit_offset.fill_(3.4)
    assert fq.bits == 6
    with torch.no_grad():
        fq.bit_offset.fill_(-10.0)
    assert fq.bits == 3
    with pytest.raises(ValueError, match="outside"):
        LearnableBitFakeQuantize(bits=9, min_bits=2, max_bits=8)


@pytest.mark.parametrize(("signed", "symmetric", "per_channel"), KINDS)
def test_bit_offset_gets_nonzero_gradient(signed: bool, symmetric: bool, per_channel: bool) -> None:
    fq = calibrated(make_fq(signed, symmetric, per_channel), data())
    fq.train()
    x = data(1)
    y = fq(x)
    ((y - x) ** 2).sum().backward()
    assert fq.bit_offset.grad is not None
    assert float(fq.bit_offset.grad.abs()) > 0
    assert fq.scale.grad is not None
    assert float(fq.scale.grad.abs().sum()) > 0


@pytest.mark.parametrize("per_channel", [True, False])
def test_gradient_nonzero_at_max_bits(per_channel: bool) -> None:
    fq = calibrated(make_fq(per_channel=per_channel, bits=8, min_bits=2, max_bits=8), data())
    assert fq.bits == fq.max_bits
    y = fq(data(2) * 1.5)  # some values clip: the bound matters
    (y**2).sum().backward()
    assert float(fq.bit_offset.grad.abs()) > 0  # ste_clamp keeps the bound trainable


def test_bits_stay_in_range_after_big_steps() -> None:
    fq = calibrated(make_fq(bits=5, min_bits=3, max_bits=7), data())
    opt = torch.optim.SGD([fq.bit_offset], lr=1000.0)
    for sign in (1.0, -1.0):
        for _ in range(3):
            opt.zero_grad()
            (sign * fq(data(3)).abs().sum() + sign * 100 * fq.bit_offset.sum()).backward()
            opt.step()
            assert 3 <= fq.bits <= 7
            assert 3 <= fq.quant_max.bit_length() + 1 <= 7
    y = fq(data(4))
    assert torch.isfinite(y).all()


def test_learnable_scale_gets_gradient_and_fixed_scale_does_not() -> None:
    fq = calibrated(make_fq(learn_scale=True), data())
    fq(data(5)).pow(2).sum().backward()
    assert fq.scale.requires_grad
    assert float(fq.scale.grad.abs().sum()) > 0
    fixed = calibrated(make_fq(learn_scale=False, learnable_bits=False), data())
    assert not fixed.scale.requires_grad
    assert not fixed.learnable_bits


@pytest.mark.parametrize(("signed", "symmetric", "per_channel"), KINDS)
def test_set_bits_keeps_the_covered_range(signed: bool, symmetric: bool, per_channel: bool) -> None:
    x = data()
    fq = calibrated(make_fq(signed, symmetric, per_channel, bits=8, min_bits=2, max_bits=8), x)

    def covered() -> tuple[torch.Tensor, torch.Tensor]:
        s, z = fq.calculate_qparams()
        return (fq.quant_min - z) * s, (fq.quant_max - z) * s

    lo8, hi8 = covered()
    fq.set_bits(4)
    assert fq.bits == 4
    assert int(fq.int_bits) == 4
    lo4, hi4 = covered()
    width8 = hi8 - lo8
    torch.testing.assert_close(hi4 - lo4, width8, rtol=1e-5, atol=1e-6)
    step4 = width8 / 15
    assert torch.all((lo4 - lo8).abs() <= step4)
    assert torch.all((hi4 - hi8).abs() <= step4)
    # the observer follows the bit width
    assert (fq.activation_post_process.quant_min, fq.activation_post_process.quant_max) == (
        fq.quant_min,
        fq.quant_max,
    )
    fq.set_bits(20)
    assert fq.bits == 8


def test_observer_and_fake_quant_flags() -> None:
    fq = make_fq()
    for flag in (fq.observer_enabled, fq.fake_quant_enabled, fq.scale_initialized):
        assert flag.dtype == torch.uint8
    x = data()
    fq(x)  # observer on: the scale comes from the data
    s = fq.scale.detach().clone()
    fq.disable_observer()
    fq(x * 10)
    assert torch.equal(fq.scale.detach(), s)
    fq.enable_observer()
    fq(x * 10)
    torch.testing.assert_close(fq.scale.detach(), s * 10)
    fq.disable_fake_quant()
    x2 = torch.randn(8, 32)
    assert torch.equal(fq(x2), x2)  # disabled fake quant is the identity
    fq.enable_fake_quant()
    assert not torch.equal(fq(x2), x2)


def test_uncalibrated_use_raises() -> None:
    fq = make_fq()
    fq.disable_observer()
    with pytest.raises(RuntimeError, match="calibrat"):
        fq(torch.randn(8, 4))
    with pytest.raises(CalibrationError):
        fq.calculate_qparams()


@pytest.mark.parametrize("per_channel", [True, False])
def test_state_dict_round_trip_into_fresh_module(per_channel: bool) -> None:
    fq = calibrated(make_fq(per_channel=per_channel, bits=6, observer=MSEClipObserver), data())
    fq.set_bits(3)
    fresh = make_fq(per_channel=per_channel, bits=6, observer=MSEClipObserver)  # scale still shape [1]
    fresh.load_state_dict(fq.state_dict())
    assert fresh.scale.shape == fq.scale.shape
    assert fresh.bits == 3
    assert fresh.quant_max == fq.quant_max
    assert fresh.activation_post_process.quant_max == fq.quant_max
    fresh.disable_observer()
    with torch.no_grad():
        assert torch.equal(fresh(data(7)), fq(data(7)))


def test_loads_a_fixed_bit_torch_ao_checkpoint() -> None:
    ref = FakeQuantize(quant_min=0, quant_max=255, dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    x = torch.randn(200) * 3 + 1
    ref(x)
    ref.disable_observer()
    fq = LearnableBitFakeQuantize(bits=8, learnable_bits=False, signed=False, symmetric=False)
    fq.load_state_dict(ref.state_dict())  # strict: eps buffer and missing flags are handled
    assert fq.bits == 8
    assert int(fq.scale_initialized) == 1
    torch.testing.assert_close(fq.scale.detach(), ref.scale)
    assert int(fq.zero_point) == int(ref.zero_point)
    fq.disable_observer()
    with torch.no_grad():
        torch.testing.assert_close(fq(x), ref(x))


def test_calculate_qparams_shapes_and_types() -> None:
    fq = calibrated(make_fq(per_channel=True, bits=8, narrow_range=True), data())
    s, z = fq.calculate_qparams()
    assert s.shape == (8,)
    assert z.shape == (8,)
    assert z.dtype == torch.int32
    torch.testing.assert_close(s, data().abs().max(dim=1).values / 127)


def _prepared_tiny(learnable: bool) -> nn.Module:
    model = make_tiny_sam2_like()
    wfq = LearnableBitFakeQuantize.with_args(
        observer=MinMaxRangeObserver, bits=6, learnable_bits=learnable, per_channel=True, narrow_range=True
    )
    names = ["image_encoder.trunk.blocks.0.mlp.layers.0", "image_encoder.neck.convs.0.conv"]
    ao_prepare_qat(model, dict.fromkeys(names, build_qconfig(wfq, MinMaxRangeObserver)))
    model.eval()
    with torch.no_grad():
        model(tiny_input())
    return model


def test_torch_ao_convert_accepts_it() -> None:
    import torch.ao.nn.quantized as nnq

    from sam2_quant_plugin.torchao_adapter import select_engine

    select_engine()
    model = _prepared_tiny(learnable=True)
    mlp, neck = "image_encoder.trunk.blocks.0.mlp.layers.0", "image_encoder.neck.convs.0.conv"
    ref_w = {}
    for name in (mlp, neck):
        layer = model.get_submodule(name)
        s, z = layer.weight_fake_quant.calculate_qparams()
        assert layer.weight_fake_quant.bits == 6
        ref_w[name] = torch.fake_quantize_per_channel_affine(layer.weight.detach(), s, z, 0, -31, 31)
    ao_convert(model)  # torch.ao convert on the whole prepared model
    q_mlp, q_neck = model.get_submodule(mlp), model.get_submodule(neck)
    assert isinstance(q_mlp, nnq.Linear)
    assert isinstance(q_neck, nnq.Conv2d)
    torch.testing.assert_close(q_mlp.weight().dequantize(), ref_w[mlp])
    torch.testing.assert_close(q_neck.weight().dequantize(), ref_w[neck])
    assert int(q_mlp.weight().int_repr().abs().max()) <= 31  # 6-bit codes in the int8 container
    # run the converted layers on quantized inputs
    out = q_mlp(torch.quantize_per_tensor(torch.randn(3, 16), 0.05, 128, torch.quint8)).dequantize()
    assert out.shape == (3, 32)
    assert torch.isfinite(out).all()
    img = q_neck(torch.quantize_per_tensor(torch.randn(2, 16, 4, 4), 0.05, 128, torch.quint8)).dequantize()
    assert img.shape == (2, 16, 4, 4)
    assert torch.isfinite(img).all()


def test_no_grad_output_equals_frozen_bit_exactly() -> None:
    for per_channel, signed in ((True, True), (False, False)):
        fq = calibrated(make_fq(signed, signed, per_channel, bits=5), data() + (0 if signed else 1))
        frozen = FrozenFakeQuantize.from_fake_quant(fq)
        x = data(9) * 1.3
        with torch.no_grad():
            assert torch.equal(fq(x), frozen(x))
        with torch.enable_grad():  # training path: same values up to float rounding of x / s
            torch.testing.assert_close(fq(x), frozen(x), atol=float(frozen.scale.max()) * 1.001, rtol=0)


def test_deepcopy_and_torch_save_of_prepared_model() -> None:
    from sam2_quant_plugin import calibrate, prepare_qat

    x = tiny_input()
    model = prepare_qat(make_tiny_sam2_like(), "learnable")
    calibrate(model, forward_loop=lambda m: m(x))
    learnable = [m for m in model.modules() if isinstance(m, LearnableBitFakeQuantize)]
    assert learnable
    for m in learnable:
        for buf in ("observer_enabled", "fake_quant_enabled", "scale_initialized"):
            assert getattr(m, buf).dtype == torch.uint8  # DDP broadcasts buffers: no bool
    model.eval()
    with torch.no_grad():
        y = model(x)
        twin = copy.deepcopy(model)
        assert torch.equal(twin(x), y)
        buf = io.BytesIO()
        torch.save(model, buf)  # whole module: the qconfigs torch.ao leaves must pickle
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        assert torch.equal(loaded(x), y)
        sd_buf = io.BytesIO()
        torch.save(model.state_dict(), sd_buf)
        sd_buf.seek(0)
        fresh = prepare_qat(make_tiny_sam2_like(), "learnable").eval()  # uncalibrated: scale shape [1]
        fresh.load_state_dict(torch.load(sd_buf))
        assert torch.equal(fresh(x), y)
