"""sam2_quant_plugin.numerics: integer ranges, STE ops, qparams, fake-quant, clip search, percentiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_quant_plugin.errors import BitsError
from sam2_quant_plugin.numerics import (
    bits_tensor_from_offset,
    check_bits,
    fake_quantize,
    fake_quantize_exact,
    histogram_percentile,
    mse_clip_search,
    qparams_from_minmax,
    qrange,
    qrange_tensor,
    quantize_to_int,
    reduce_minmax,
    ste_clamp,
    ste_round,
    storage_bits,
)


@pytest.mark.parametrize("bits", range(2, 9))
def test_qrange_values(bits: int) -> None:
    half = 2 ** (bits - 1)
    assert qrange(bits, signed=True) == (-half, half - 1)
    assert qrange(bits, signed=True, narrow=True) == (-half + 1, half - 1)
    assert qrange(bits, signed=False) == (0, 2**bits - 1)
    assert qrange(bits, signed=False, narrow=True) == (0, 2**bits - 2)
    for signed in (True, False):
        for narrow in (True, False):
            lo, hi = qrange_tensor(torch.tensor(float(bits)), signed, narrow)
            assert (int(lo), int(hi)) == qrange(bits, signed, narrow)


def test_qrange_known_8bit() -> None:
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, True, narrow=True) == (-127, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(4, True, narrow=True) == (-7, 7)
    assert qrange(2, False) == (0, 3)


@pytest.mark.parametrize("bad", [1, 9, 0, -3, 4.5, True, False, "8", None])
def test_check_bits_rejects(bad: object) -> None:
    with pytest.raises(BitsError, match=r"weight\.bits"):
        check_bits(bad, what="weight.bits")  # type: ignore[arg-type]


def test_check_bits_accepts_and_returns_int() -> None:
    assert check_bits(4) == 4
    out = check_bits(8.0)
    assert out == 8
    assert type(out) is int
    assert check_bits(3, lo=3, hi=3) == 3
    assert check_bits(np.int64(5)) == 5  # numpy ints (e.g. from a search ladder) are fine
    with pytest.raises(BitsError, match=r"3\.\.6"):
        check_bits(7, lo=3, hi=6)


def test_ste_round_forward_and_identity_grad() -> None:
    x = torch.tensor([-2.6, -0.5, 0.49, 1.5, 3.2], requires_grad=True)
    y = ste_round(x)
    assert torch.equal(y.detach(), torch.round(x.detach()))
    (y * torch.arange(1.0, 6.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(1.0, 6.0))


def test_ste_clamp_forward_and_identity_grad_at_and_beyond_bounds() -> None:
    x = torch.tensor([-5.0, 2.0, 3.0, 8.0, 20.0], requires_grad=True)  # below, at lo, inside, at hi, above
    y = ste_clamp(x, 2.0, 8.0)
    assert torch.equal(y.detach(), torch.tensor([2.0, 2.0, 3.0, 8.0, 8.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(5))
    # torch.clamp would have killed the gradient outside the range: the reason ste_clamp exists.
    x2 = x.detach().clone().requires_grad_()
    torch.clamp(x2, 2.0, 8.0).sum().backward()
    assert x2.grad[0] == 0
    assert x2.grad[-1] == 0


def test_bits_tensor_from_offset_rounds_clamps_and_passes_grad() -> None:
    off = torch.tensor([7.0], requires_grad=True)  # min 2 + 7 = 9 -> clamped to 8
    b = bits_tensor_from_offset(off, 2, 8)
    assert float(b.detach()) == 8.0
    b.sum().backward()
    assert float(off.grad) == 1.0
    assert float(bits_tensor_from_offset(torch.tensor([1.4]), 2, 8)) == 3.0
    assert float(bits_tensor_from_offset(torch.tensor([-3.0]), 2, 8)) == 2.0


def test_qparams_symmetric_signed_hand_computed() -> None:
    lo, hi = torch.tensor([-2.0, -0.5, 0.3]), torch.tensor([1.0, 3.0, 0.6])
    scale, zp = qparams_from_minmax(lo, hi, -127, 127, symmetric=True)
    torch.testing.assert_close(scale, torch.tensor([2.0, 3.0, 0.6]) / 127)
    assert zp.dtype == torch.int32
    assert torch.equal(zp, torch.zeros(3, dtype=torch.int32))
    # full signed range [-128, 127]: half-width 127.5, the torch.ao convention
    scale, _ = qparams_from_minmax(torch.tensor([-1.0]), torch.tensor([1.0]), -128, 127, symmetric=True)
    torch.testing.assert_close(scale, torch.tensor([1.0 / 127.5]))


def test_qparams_symmetric_unsigned_mid_code() -> None:
    scale, zp = qparams_from_minmax(torch.tensor([-1.0]), torch.tensor([0.5]), 0, 255, symmetric=True)
    torch.testing.assert_close(scale, torch.tensor([1.0 / 127.5]))
    assert int(zp) == 128
    _, zp4 = qparams_from_minmax(torch.tensor([-1.0]), torch.tensor([0.5]), 0, 15, symmetric=True)
    assert int(zp4) == 8


def test_qparams_affine_hand_computed() -> None:
    scale, zp = qparams_from_minmax(torch.tensor([-1.0]), torch.tensor([3.0]), 0, 255, symmetric=False)
    torch.testing.assert_close(scale, torch.tensor([4.0 / 255]))
    assert int(zp) == round(1.0 / (4.0 / 255))  # 64
    # zero point rounds to nearest: -1.1 / (4.1 / 255) = -68.41 -> 68 (floor would give 69)
    scale, zp = qparams_from_minmax(torch.tensor([-1.1]), torch.tensor([3.0]), 0, 255, symmetric=False)
    torch.testing.assert_close(scale, torch.tensor([4.1 / 255]))
    assert int(zp) == 68
    # range widened to hold 0: [0.5, 2] behaves like [0, 2]
    scale, zp = qparams_from_minmax(torch.tensor([0.5]), torch.tensor([2.0]), 0, 255, symmetric=False)
    torch.testing.assert_close(scale, torch.tensor([2.0 / 255]))
    assert int(zp) == 0
    # all-negative range: zp clamps to qmax
    _, zp = qparams_from_minmax(torch.tensor([-3.0]), torch.tensor([-1.0]), 0, 255, symmetric=False)
    assert int(zp) == 255


def test_qparams_degenerate_range_uses_eps() -> None:
    scale, zp = qparams_from_minmax(torch.zeros(2), torch.zeros(2), -127, 127, symmetric=True, eps=1e-6)
    assert torch.all(scale == 1e-6)
    assert torch.all(zp == 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_qparams_nonfinite_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or Inf"):
        qparams_from_minmax(torch.tensor([bad, 0.0]), torch.tensor([1.0, 1.0]), -127, 127, True)


@pytest.mark.parametrize(("qmin", "qmax", "symmetric"), [(-127, 127, True), (0, 255, False), (-8, 7, True)])
def test_fake_quantize_matches_torch_per_channel(qmin: int, qmax: int, symmetric: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 40, generator=g) * torch.linspace(0.1, 4.0, 6)[:, None]
    lo, hi = x.min(dim=1).values * 0.8, x.max(dim=1).values * 0.8  # some values clip
    scale, zp = qparams_from_minmax(lo, hi, qmin, qmax, symmetric)
    ours = fake_quantize(x, scale, zp, qmin, qmax, ch_axis=0)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, qmin, qmax)
    assert torch.equal(ours, ref)  # x * (1/s) like torch's kernel, so .5 ties land the same way
    exact = fake_quantize_exact(x, scale, zp, qmin, qmax, ch_axis=0)
    assert torch.equal(exact, ref)


def test_fake_quantize_matches_torch_per_tensor_and_axis1() -> None:
    x = torch.randn(4, 5, 3)
    scale, zp = torch.tensor([0.02]), torch.tensor([10], dtype=torch.int32)
    ref = torch.fake_quantize_per_tensor_affine(x, 0.02, 10, 0, 255)
    assert torch.equal(fake_quantize(x, scale, zp, 0, 255), ref)
    assert torch.equal(fake_quantize_exact(x, scale, zp, 0, 255, None), ref)
    s1 = torch.tensor([0.01, 0.05, 0.1, 0.2, 0.3])
    z1 = torch.zeros(5, dtype=torch.int32)
    ref1 = torch.fake_quantize_per_channel_affine(x, s1, z1, 1, -8, 7)
    assert torch.equal(fake_quantize(x, s1, z1, -8, 7, ch_axis=1), ref1)


def test_fake_quantize_gradient_flows_to_x_scale_and_bounds() -> None:
    x = torch.linspace(-3, 3, 50, requires_grad=True)
    scale = torch.tensor([0.1], requires_grad=True)
    qmax = torch.tensor(7.0, requires_grad=True)
    y = fake_quantize(x, scale, torch.zeros(1), -8, qmax)
    y.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert scale.grad.abs() > 0
    assert qmax.grad.abs() > 0
    inside = x.detach().abs() < 0.6
    torch.testing.assert_close(x.grad[inside], (2 * y.detach())[inside])  # STE inside the range


def test_quantize_to_int_codes() -> None:
    x = torch.tensor([[-1.0, 0.26, 2.0], [0.1, -0.1, 0.0]])
    codes = quantize_to_int(x, torch.tensor([0.5, 0.1]), torch.zeros(2), -2, 1, ch_axis=0)
    assert codes.dtype == torch.int32
    assert codes.tolist() == [[-2, 1, 1], [1, -1, 0]]


def _brute_force_clip(x: torch.Tensor, qmin: int, qmax: int, symmetric: bool, grid: int, min_ratio: float):
    ratios = torch.linspace(min_ratio, 1.0, grid, dtype=torch.float32).tolist()
    lows, highs = [], []
    for row in x:
        lo, hi = row.min(), row.max()
        best = (float("inf"), None, None)
        for r in ratios:
            s, z = qparams_from_minmax((lo * r).reshape(1), (hi * r).reshape(1), qmin, qmax, symmetric)
            q = torch.clamp(torch.round(row / s) + z, qmin, qmax)
            err = float(((q - z) * s - row).pow(2).sum())
            if err < best[0]:
                best = (err, float(lo * r), float(hi * r))
        lows.append(best[1])
        highs.append(best[2])
    return torch.tensor(lows), torch.tensor(highs)


@pytest.mark.parametrize("symmetric", [True, False])
def test_mse_clip_search_matches_brute_force(symmetric: bool) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 512, generator=g)
    x[0, 3] = 20.0  # a planted outlier: the best clip for row 0 is well below its max
    x[2, 10] = -25.0
    qmin, qmax = (-7, 7) if symmetric else (0, 15)
    lo, hi = mse_clip_search(x, qmin, qmax, ch_axis=0, symmetric=symmetric, grid=40, min_ratio=0.1)
    rlo, rhi = _brute_force_clip(x, qmin, qmax, symmetric, 40, 0.1)
    torch.testing.assert_close(lo, rlo, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hi, rhi, atol=1e-5, rtol=1e-5)
    assert hi[0] < 0.8 * x[0].max()  # the outlier row is clipped


def test_mse_clip_search_per_tensor_and_axis1() -> None:
    x = torch.randn(3, 50)
    x[1, 1] = 30.0
    lo, hi = mse_clip_search(x, -7, 7, ch_axis=None, grid=30)
    assert lo.shape == (1,)
    assert hi.shape == (1,)
    _rlo, rhi = _brute_force_clip(x.reshape(1, -1), -7, 7, True, 30, 0.3)
    torch.testing.assert_close(hi, rhi)
    lo1, _ = mse_clip_search(x.t().contiguous(), -7, 7, ch_axis=1, grid=30)
    lo0, _ = mse_clip_search(x, -7, 7, ch_axis=0, grid=30)
    torch.testing.assert_close(lo1, lo0)


@pytest.mark.parametrize(
    ("qmin", "qmax", "symmetric", "norm"), [(-7, 7, True, 2.0), (0, 15, False, 2.0), (-7, 7, True, 2.4)]
)
def test_mse_clip_search_is_bit_identical_to_the_fake_quantize_loop(
    qmin: int, qmax: int, symmetric: bool, norm: float
) -> None:
    """The in-place search picks exactly the ratios a loop over :func:`fake_quantize` picks."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 256, generator=g) * 0.02
    x[torch.rand(x.shape, generator=g) < 0.01] *= 8
    lo, hi = reduce_minmax(x, 0)
    best_err, best_hi = torch.full_like(lo, float("inf")), hi.clone()
    for r in torch.linspace(0.3, 1.0, 50).tolist():
        s, z = qparams_from_minmax(lo * r, hi * r, qmin, qmax, symmetric)
        err = (fake_quantize(x, s, z, qmin, qmax, ch_axis=0) - x).abs().pow(norm).sum(dim=1)
        best_hi = torch.where(err < best_err, hi * r, best_hi)
        best_err = torch.minimum(err, best_err)
    _lo, got_hi = mse_clip_search(x, qmin, qmax, 0, symmetric, grid=50, norm=norm)
    assert torch.equal(got_hi, best_hi)


@pytest.mark.parametrize("q", [0.001, 0.1, 0.5, 0.9, 0.999])
def test_histogram_percentile_vs_torch_quantile(q: float) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200_000, generator=g, dtype=torch.float64)
    lo, hi, bins = float(x.min()), float(x.max()), 4096
    hist = torch.histc(x, bins=bins, min=lo, max=hi)
    p_lo, p_hi = histogram_percentile(hist, lo, hi, q, 1 - q)
    width = (hi - lo) / bins
    assert abs(p_lo - float(torch.quantile(x, q))) < 2 * width
    assert abs(p_hi - float(torch.quantile(x, 1 - q))) < 2 * width


def test_histogram_percentile_interpolates_in_bin() -> None:
    hist = torch.tensor([0.0, 4.0, 0.0, 0.0])  # everything in [1, 2)
    p_lo, p_hi = histogram_percentile(hist, 0.0, 4.0, 0.25, 0.75)
    assert p_lo == pytest.approx(1.25)
    assert p_hi == pytest.approx(1.75)
    assert histogram_percentile(hist, 0.0, 4.0, 0.5, 1.0) == pytest.approx((1.5, 2.0))


def test_histogram_percentile_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty histogram"):
        histogram_percentile(torch.zeros(8), 0.0, 1.0, 0.1, 0.9)


def test_storage_bits() -> None:
    assert [storage_bits(b) for b in range(2, 9)] == list(range(2, 9))
    # the int4 ONNX export: INT4 initializers up to 4 bits, int8 above
    assert [storage_bits(b, "onnx") for b in range(2, 9)] == [4, 4, 4, 8, 8, 8, 8]
    with pytest.raises(ValueError, match="use one of"):
        storage_bits(4, "int3")
