"""MSEClipObserver against an exhaustive per-channel clip search, and its benefit over min-max at 4 bits."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.errors import CalibrationError
from sam2_quant_plugin.fake_quant import LearnableBitFakeQuantize
from sam2_quant_plugin.numerics import qparams_from_minmax
from sam2_quant_plugin.observers import MinMaxRangeObserver, MSEClipObserver
from sam2_quant_plugin.torchao_adapter import ao_prepare_qat, build_qconfig
from tests._utils import make_tiny_sam2_like, tiny_input

W4 = {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric, "quant_min": -7, "quant_max": 7}


def with_outliers(rows: int = 6, cols: int = 4096, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g)
    x[0, 3] = 50.0
    x[2, 40] = -50.0
    x[4, 1] = 50.0
    x[4, 2] = 50.0
    return x


def exhaustive_clip(x: torch.Tensor, qmin: int, qmax: int, grid: int, min_ratio: float) -> torch.Tensor:
    """Per channel: the max of the clipped range, over every ratio of the same grid, scored one by one."""
    best = []
    for row in x:
        lo, hi = row.min(), row.max()
        errs = []
        for r in torch.linspace(min_ratio, 1.0, grid, dtype=torch.float32).tolist():
            s, _ = qparams_from_minmax((lo * r).reshape(1), (hi * r).reshape(1), qmin, qmax, True)
            fq = torch.clamp(torch.round(row / s), qmin, qmax) * s
            errs.append((float((fq - row).pow(2).sum()), float(hi * r)))
        best.append(min(errs)[1])
    return torch.tensor(best)


def quant_mse(x: torch.Tensor, obs: torch.nn.Module) -> float:
    s, z = obs.calculate_qparams()
    fq = torch.fake_quantize_per_channel_affine(x, s, z, 0, obs.quant_min, obs.quant_max)
    return float((fq - x).pow(2).mean())


def test_clip_equals_exhaustive_search() -> None:
    x = with_outliers(rows=5)
    obs = MSEClipObserver(**W4, grid=25, min_ratio=0.1)
    obs(x)
    torch.testing.assert_close(obs.max_val, exhaustive_clip(x, -7, 7, 25, 0.1), rtol=1e-5, atol=1e-5)
    assert float(obs.min_val[0]) == pytest.approx(float(obs.max_val[0] * x[0].min() / x[0].max()), rel=1e-5)
    assert obs.max_val[0] < 0.5 * 50.0  # the outlier channel is clipped hard at 4 bits


def test_beats_minmax_at_4_bits() -> None:
    x = with_outliers()
    mse, mm = MSEClipObserver(**W4, grid=40), MinMaxRangeObserver(**W4)
    mse(x)
    mm(x)
    e_mse, e_mm = quant_mse(x, mse), quant_mse(x, mm)
    assert e_mse < 0.85 * e_mm
    # never worse per channel (ratio 1.0, plain min-max, is on the grid)
    s, _ = mse.calculate_qparams()
    s_mm, _ = mm.calculate_qparams()
    assert torch.all(s <= s_mm + 1e-9)


def test_reruns_only_when_tensor_or_bits_change() -> None:
    x = with_outliers(cols=256)
    obs = MSEClipObserver(**W4, grid=20)
    obs(x)
    first = obs.max_val.clone()
    obs.min_val.fill_(123.0)  # a rerun on the same tensor would overwrite this
    obs(x)
    assert torch.all(obs.min_val == 123.0)
    with torch.no_grad():
        x.mul_(2.0)  # in-place change bumps the version counter: the search reruns
    obs(x)
    torch.testing.assert_close(obs.max_val, 2 * first, rtol=1e-5, atol=1e-5)
    obs.set_qrange(-127, 127)  # 8 bits: the optimum moves, the old result is dropped
    assert not obs.observed
    obs(x)
    assert torch.all(obs.max_val >= 2 * first - 1e-5)


def test_average_mode_averages_batches() -> None:
    obs = MSEClipObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, average=True, grid=20)
    a, b = torch.randn(300), torch.randn(300) * 3
    ref = MSEClipObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, grid=20)
    ref(a)
    ma = ref.max_val.clone()
    ref(b)
    mb = ref.max_val.clone()
    obs(a)
    obs(b)
    torch.testing.assert_close(obs.max_val, (ma + mb) / 2)


def test_nan_raises_calibration_error() -> None:
    x = with_outliers(cols=64)
    x[1, 1] = float("nan")
    with pytest.raises(CalibrationError):
        MSEClipObserver(**W4)(x)


def test_state_dict_round_trip() -> None:
    obs = MSEClipObserver(**W4, grid=20)
    obs(with_outliers(cols=256))
    fresh = MSEClipObserver(**W4, grid=20)
    fresh.load_state_dict(obs.state_dict())
    for a, b in zip(fresh.calculate_qparams(), obs.calculate_qparams()):
        assert torch.equal(a, b)


def test_in_qconfig_through_prepare_qat() -> None:
    model = make_tiny_sam2_like()
    name = "image_encoder.trunk.blocks.1.attn.qkv"
    wfq = LearnableBitFakeQuantize.with_args(
        observer=MSEClipObserver, bits=4, learnable_bits=False, per_channel=True, narrow_range=True, grid=30
    )
    ao_prepare_qat(model, {name: build_qconfig(wfq, MinMaxRangeObserver)})
    layer = model.get_submodule(name)
    model(tiny_input())
    obs = layer.weight_fake_quant.activation_post_process
    assert isinstance(obs, MSEClipObserver)
    assert obs.quant_min == -7
    assert obs.quant_max == 7
    ref = exhaustive_clip(layer.weight.detach(), -7, 7, 30, 0.3)
    torch.testing.assert_close(obs.max_val, ref, rtol=1e-5, atol=1e-5)
