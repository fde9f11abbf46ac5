"""MinMaxRangeObserver against exact per-channel / per-tensor ranges, in torch.ao, and its state_dict."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.errors import CalibrationError
from sam2_quant_plugin.fake_quant import LearnableBitFakeQuantize
from sam2_quant_plugin.observers import MinMaxRangeObserver, get_observer, observer_names
from sam2_quant_plugin.torchao_adapter import FakeQuantize, ao_prepare_qat, build_qconfig
from tests._utils import make_tiny_sam2_like, tiny_input


def with_outliers(rows: int = 8, cols: int = 256, seed: int = 0) -> torch.Tensor:
    """Gaussian weights with a few planted 50x outliers in some channels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g)
    x[1, 5] = 50.0
    x[3, 100] = -50.0
    x[6, 7] = 45.0
    x[6, 8] = -60.0
    return x


def test_registered_names() -> None:
    assert {"minmax", "mse", "percentile"} <= set(observer_names())
    assert get_observer("minmax") is MinMaxRangeObserver


def test_per_channel_symmetric_is_exact_absmax() -> None:
    x = with_outliers()
    obs = MinMaxRangeObserver(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127
    )
    assert obs(x) is x
    torch.testing.assert_close(obs.min_val, x.min(dim=1).values, rtol=0, atol=0)
    torch.testing.assert_close(obs.max_val, x.max(dim=1).values, rtol=0, atol=0)
    scale, zp = obs.calculate_qparams()
    absmax = x.abs().max(dim=1).values
    torch.testing.assert_close(scale, absmax / 127)
    assert torch.equal(zp, torch.zeros(8, dtype=torch.int32))
    assert scale[6] == pytest.approx(60.0 / 127)


def test_per_channel_axis1_conv_weight() -> None:
    w = torch.randn(4, 6, 3, 3)
    w[2, 1, 0, 0] = 30.0
    obs = MinMaxRangeObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=1)
    obs(w)
    ref = w.transpose(0, 1).reshape(6, -1)
    torch.testing.assert_close(obs.max_val, ref.max(dim=1).values)
    assert obs.max_val[1] == 30.0


def test_per_tensor_running_union_over_batches() -> None:
    obs = MinMaxRangeObserver()  # quint8 per-tensor affine, the activation default
    batches = [torch.randn(100) * (i + 1) for i in range(3)]
    batches[1][0] = 50.0
    for b in batches:
        obs(b)
    allx = torch.cat(batches)
    assert float(obs.min_val) == float(allx.min())
    assert float(obs.max_val) == 50.0
    scale, zp = obs.calculate_qparams()
    assert float(scale) == pytest.approx((50.0 - float(allx.min())) / 255, rel=1e-6)
    assert 0 <= int(zp) <= 255


def test_disabled_observer_ignores_data() -> None:
    obs = MinMaxRangeObserver()
    obs(torch.tensor([-1.0, 1.0]))
    obs.enabled.fill_(0)
    obs(torch.tensor([-100.0, 100.0]))
    assert float(obs.max_val) == 1.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input_raises_calibration_error(bad: float) -> None:
    obs = MinMaxRangeObserver()
    x = torch.randn(10)
    x[3] = bad
    with pytest.raises(CalibrationError, match="NaN/Inf"):
        obs(x)


def test_no_data_calculate_qparams_raises() -> None:
    with pytest.raises(CalibrationError, match="seen no data"):
        MinMaxRangeObserver().calculate_qparams()


def test_state_dict_round_trip() -> None:
    obs = MinMaxRangeObserver(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127
    )
    obs(with_outliers())
    fresh = MinMaxRangeObserver(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127
    )
    fresh.load_state_dict(obs.state_dict())
    assert torch.equal(fresh.min_val, obs.min_val)
    assert torch.equal(fresh.max_val, obs.max_val)
    for a, b in zip(fresh.calculate_qparams(), obs.calculate_qparams()):
        assert torch.equal(a, b)
    assert fresh.enabled.dtype == torch.uint8


def test_inside_torch_ao_fake_quantize() -> None:
    fq = FakeQuantize(
        observer=MinMaxRangeObserver,
        quant_min=-127,
        quant_max=127,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )
    x = with_outliers()
    fq(x)
    torch.testing.assert_close(fq.scale, x.abs().max(dim=1).values / 127)


def test_in_qconfig_through_prepare_qat() -> None:
    model = make_tiny_sam2_like()
    name = "image_encoder.trunk.blocks.0.mlp.layers.0"
    wfq = LearnableBitFakeQuantize.with_args(
        observer=MinMaxRangeObserver, bits=8, learnable_bits=False, per_channel=True, narrow_range=True
    )
    out_obs = MinMaxRangeObserver.with_args(dtype=torch.quint8)
    ao_prepare_qat(model, {name: build_qconfig(wfq, out_obs)})
    layer = model.get_submodule(name)
    assert isinstance(layer.activation_post_process, MinMaxRangeObserver)
    model(tiny_input())
    w = layer.weight.detach()
    torch.testing.assert_close(layer.weight_fake_quant.activation_post_process.max_val, w.max(dim=1).values)
    torch.testing.assert_close(layer.weight_fake_quant.scale.detach(), w.abs().max(dim=1).values / 127)
    assert layer.activation_post_process.observed
    assert float(layer.activation_post_process.max_val) > float(layer.activation_post_process.min_val)
