"""PercentileObserver against torch.quantile on data with outliers, across re-binning batches."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.errors import CalibrationError
from sam2_quant_plugin.fake_quant import LearnableBitFakeQuantize
from sam2_quant_plugin.observers import MinMaxRangeObserver, PercentileObserver
from sam2_quant_plugin.torchao_adapter import ao_prepare_qat, build_qconfig
from tests._utils import make_tiny_sam2_like, tiny_input


def growing_batches(n: int = 4, size: int = 50_000) -> list[torch.Tensor]:
    """Gaussian activations whose spread grows batch by batch, plus a few 50x outliers per batch."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        x = torch.randn(size, generator=g) * (1.0 + i) + 0.3 * i
        x[:3] = 50.0 * (1.0 + i)
        x[3:5] = -40.0 * (1.0 + i)
        out.append(x)
    return out


@pytest.mark.parametrize("percentile", [99.9, 99.0])
def test_affine_percentiles_across_rebinning(percentile: float) -> None:
    batches = growing_batches()
    obs = PercentileObserver(percentile=percentile, bins=2048)
    spans = []
    for b in batches:
        obs(b)
        spans.append(tuple(obs.span.tolist()))
    assert len(set(spans)) == len(spans)  # the range grew every batch: re-binned each time
    allx = torch.cat(batches).double()
    q = percentile / 100
    width = (spans[-1][1] - spans[-1][0]) / 2048
    assert abs(float(obs.max_val) - float(torch.quantile(allx, q))) < 2 * width
    assert abs(float(obs.min_val) - float(torch.quantile(allx, 1 - q))) < 2 * width
    # the outliers are clipped: the range is far inside [min, max]
    assert float(obs.max_val) < 0.2 * float(allx.max())
    assert float(obs.min_val) > 0.2 * float(allx.min())


def test_symmetric_uses_abs_percentile() -> None:
    batches = growing_batches(3)
    obs = PercentileObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, percentile=99.9)
    for b in batches:
        obs(b)
    allx = torch.cat(batches).double().abs()
    width = float(obs.span[1] - obs.span[0]) / obs.bins
    p = float(torch.quantile(allx, 0.999))
    assert abs(float(obs.max_val) - p) < 2 * width
    assert float(obs.min_val) == -float(obs.max_val)
    scale, zp = obs.calculate_qparams()
    assert int(zp) == 0
    assert float(scale) == pytest.approx(float(obs.max_val) / 127.5, rel=1e-5)


def test_single_batch_matches_quantile_and_qparams() -> None:
    x = growing_batches(1)[0]
    obs = PercentileObserver(percentile=99.99)
    obs(x)
    width = float(x.max() - x.min()) / obs.bins
    xd = x.double()
    assert abs(float(obs.max_val) - float(torch.quantile(xd, 0.9999))) < 2 * width
    assert float(obs.max_val) < 10.0  # the 50.0 outliers are beyond the 99.99th percentile
    scale, _zp = obs.calculate_qparams()
    assert float(scale) == pytest.approx((float(obs.max_val) - float(obs.min_val)) / 255, rel=1e-5)


def test_constant_tensor() -> None:
    obs = PercentileObserver()
    obs(torch.full((10,), 2.0))
    assert obs.observed
    scale, _ = obs.calculate_qparams()
    assert torch.isfinite(scale).all()
    assert float(scale) > 0


def test_rejects_per_channel_and_bad_percentile() -> None:
    with pytest.raises(ValueError, match="per-tensor"):
        PercentileObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(percentile=40.0)


def test_nan_raises_calibration_error() -> None:
    obs = PercentileObserver()
    obs(torch.randn(100))
    x = torch.randn(100)
    x[50] = float("nan")
    with pytest.raises(CalibrationError, match="NaN"):
        obs(x)


def test_state_dict_round_trip_then_continues() -> None:
    b = growing_batches(3, 20_000)
    obs = PercentileObserver(percentile=99.9)
    obs(b[0])
    obs(b[1])
    fresh = PercentileObserver(percentile=99.9)
    fresh.load_state_dict(obs.state_dict())
    assert torch.equal(fresh.hist, obs.hist)
    assert torch.equal(fresh.span, obs.span)
    assert torch.equal(fresh.max_val, obs.max_val)
    obs(b[2])
    fresh(b[2])
    assert torch.equal(fresh.max_val, obs.max_val)
    assert torch.equal(fresh.hist, obs.hist)


def test_as_input_quantizer_in_qconfig() -> None:
    model = make_tiny_sam2_like()
    name = "image_encoder.neck.convs.0.conv"
    wfq = LearnableBitFakeQuantize.with_args(bits=8, learnable_bits=False, per_channel=True)
    ao_prepare_qat(model, {name: build_qconfig(wfq, PercentileObserver.with_args(percentile=99.0))})
    layer = model.get_submodule(name)
    assert isinstance(layer.activation_post_process, PercentileObserver)
    seen = {}
    layer.register_forward_hook(lambda m, a, out: seen.setdefault("y", out.detach().clone()))
    model(tiny_input())
    y = seen["y"].double().flatten().sort().values
    obs = layer.activation_post_process
    width = float(obs.span[1] - obs.span[0]) / obs.bins
    # few samples: the 99th percentile lies between the sorted neighbours of rank 0.99 * (n - 1)
    k = 0.99 * (y.numel() - 1)
    lo, hi = float(y[int(k) - 1]), float(y[min(int(k) + 2, y.numel() - 1)])
    assert lo - 2 * width <= float(obs.max_val) <= hi + 2 * width
    assert float(obs.max_val) < float(y[-1])
    assert isinstance(layer.weight_fake_quant.activation_post_process, MinMaxRangeObserver)
