"""Gradients of the fake-quants against torch's own kernels, at every code including the end codes.

Ported facts of torch's ``test/quantization/core/test_workflow_ops.py`` (learnable forward/backward per
tensor and per channel): the learnable kernel's forward is ``fake_quantize_per_*_affine``; its input
gradient is 1 where the rounded code lies in [qmin, qmax] (on the bounds included) and 0 outside; its
scale gradient is ``(x_fq - x) / s`` inside and ``qmin - z`` / ``qmax - z`` below / above, times
``grad_factor``. The LSQ grad_factor of :class:`LearnableBitFakeQuantize` is 1/sqrt(n * qmax), n the
elements per scale.
"""

from __future__ import annotations

import math

import pytest
import torch

from sam2_quant_plugin.fake_quant import FrozenFakeQuantize, LearnableBitFakeQuantize
from sam2_quant_plugin.numerics import fake_quantize, qrange

# (signed, symmetric, narrow)
KINDS = [(True, True, False), (True, True, True), (False, False, False)]
GRANULARITY = ["per_tensor", "per_channel", "per_group"]
GROUP = 16


def _codes_input(
    s: torch.Tensor, z: torch.Tensor, qmin: int, qmax: int, cols: int, seed: int
) -> torch.Tensor:
    """Rows of values built from codes in [qmin - 3, qmax + 3], on the codes, between them and at .5 ties.

    ``s``/``z`` are per row; every row holds both end codes exactly (the cases a 50/50 tie split broke).
    """
    g = torch.Generator().manual_seed(seed)
    rows = s.numel()
    codes = torch.randint(qmin - 3, qmax + 4, (rows, cols), generator=g).float()
    codes[:, 0], codes[:, 1] = qmin, qmax
    frac = torch.tensor([0.0, 0.25, -0.25, 0.5, -0.5, 0.49])[torch.randint(0, 6, (rows, cols), generator=g)]
    frac[:, :2] = 0.0
    return (codes + frac - z[:, None]) * s[:, None]


def _qparams(
    rows: int, qmin: int, qmax: int, symmetric: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(rows, generator=g) * 0.3 + 0.01
    if symmetric:
        z = torch.zeros(rows) if qmin < 0 else torch.full((rows,), float((qmin + qmax + 1) // 2))
    else:
        z = torch.randint(qmin, qmax + 1, (rows,), generator=g).float()
    return s, z


def _torch_learnable(
    x: torch.Tensor,
    s: torch.Tensor,
    z: torch.Tensor,
    qmin: int,
    qmax: int,
    axis: int | None,
    dy: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's learnable kernel with grad_factor 1: output, dX, dScale."""
    x = x.clone().requires_grad_()
    s = s.clone().requires_grad_()
    if axis is None:
        y = torch._fake_quantize_learnable_per_tensor_affine(x, s, z, qmin, qmax, 1.0)
    else:
        y = torch._fake_quantize_learnable_per_channel_affine(x, s, z, axis, qmin, qmax, 1.0)
    y.backward(dy)
    return y.detach(), x.grad, s.grad


def _torch_backward_ties(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Values whose code torch's learnable backward may round differently from its forward.

    The forward rounds ``x * (1/s)`` and then adds z; the backward rounds ``z + x * (1/s)`` as one float
    expression (a fused multiply-add on some builds). Within a few ulps of a .5 tie, with z != 0, the two
    can differ, and the backward then calls a value clipped that the forward kept (or the reverse). We
    follow the forward.
    """
    xs = x * torch.reciprocal(s.reshape(-1, 1))
    near_tie = ((xs - xs.floor()) - 0.5).abs() < 1e-4
    return near_tie & (z.reshape(-1, 1) != 0)


def _module(bits: int, signed: bool, symmetric: bool, narrow: bool, gran: str, learn_bits: bool):
    return LearnableBitFakeQuantize(
        bits=bits,
        signed=signed,
        symmetric=symmetric,
        narrow_range=narrow,
        per_channel=gran != "per_tensor",
        group_size=GROUP if gran == "per_group" else 0,
        learnable_bits=learn_bits,
    )


def _set_qparams(fq: LearnableBitFakeQuantize, s: torch.Tensor, z: torch.Tensor) -> None:
    fq.scale.data = s.clone()
    fq.zero_point.data = z.clone()
    fq.scale_initialized.fill_(1)
    fq.disable_observer()


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize(("signed", "symmetric", "narrow"), KINDS)
@pytest.mark.parametrize("gran", GRANULARITY)
def test_learnable_module_matches_torch_kernel(
    bits: int, signed: bool, symmetric: bool, narrow: bool, gran: str
):
    qmin, qmax = qrange(bits, signed, narrow)
    rows = 1 if gran == "per_tensor" else 6
    s, z = _qparams(rows, qmin, qmax, symmetric, seed=bits)
    if gran == "per_tensor":
        x = _codes_input(s, z, qmin, qmax, 48, seed=bits).reshape(4, 12)
        view, axis = x, None
    else:
        view = _codes_input(s, z, qmin, qmax, GROUP if gran == "per_group" else 40, seed=bits)
        x = view.reshape(3, -1) if gran == "per_group" else view
        axis = 0
    dy = torch.rand(view.shape, generator=torch.Generator().manual_seed(7))
    dy[_torch_backward_ties(view, s, z)] = (
        0.0  # torch's backward disagrees with its own forward there (see below)
    )
    ref_y, ref_dx, ref_ds = _torch_learnable(view, s, z, qmin, qmax, axis, dy)
    n = view.numel() / s.numel()
    factor = 1.0 / math.sqrt(n * qmax)
    for learn_bits in (False, True):
        fq = _module(bits, signed, symmetric, narrow, gran, learn_bits)
        _set_qparams(fq, s, z)
        xg = x.clone().requires_grad_()
        y = fq(xg)
        assert torch.equal(y.detach().reshape(view.shape), ref_y)  # bit-exact, ties and end codes too
        y.backward(dy.reshape(x.shape))
        assert torch.equal(xg.grad.reshape(view.shape), ref_dx)  # 1 on the end codes, 0 outside
        tol = 1e-5 * float(ref_ds.abs().max()) * factor + 1e-7
        torch.testing.assert_close(fq.scale.grad, ref_ds * factor, rtol=1e-4, atol=tol)
        with torch.no_grad():  # inference (the exact kernel) gives the same values
            assert torch.equal(fq(x).reshape(view.shape), ref_y)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("gran", GRANULARITY)
def test_frozen_input_gradient_matches_torch(bits: int, gran: str) -> None:
    qmin, qmax = qrange(bits, True)
    rows = 1 if gran == "per_tensor" else 4
    s, z = _qparams(rows, qmin, qmax, True, seed=bits)
    view = _codes_input(s, z, qmin, qmax, GROUP, seed=bits + 1)
    axis = None if gran == "per_tensor" else 0
    fq = FrozenFakeQuantize(s, z, bits, True, ch_axis=axis, group_size=GROUP if gran == "per_group" else 0)
    x = (view.reshape(2, -1) if gran == "per_group" else view).clone().requires_grad_()
    dy = torch.rand(view.shape)
    fq(x).backward(dy.reshape(x.shape))
    _, ref_dx, _ = _torch_learnable(view, s, z, qmin, qmax, axis, dy)
    assert torch.equal(x.grad.reshape(view.shape), ref_dx)


def test_odd_zero_point_tie_follows_the_forward() -> None:
    """x/s = 0.5, z = 3, [0, 3]: the forward keeps code 3 (inside), so dX = 1 (torch's backward says 0)."""
    s, z = torch.tensor([0.2]), torch.tensor([3.0])
    x = torch.tensor([0.1], requires_grad=True)
    y = fake_quantize(x, s, z, 0, 3)
    assert torch.equal(y.detach(), torch.fake_quantize_per_tensor_affine(x.detach(), 0.2, 3, 0, 3))
    y.sum().backward()
    assert x.grad.tolist() == [1.0]
    assert bool(_torch_backward_ties(x.detach(), s, z).all())


def test_end_codes_get_the_full_gradient() -> None:
    """The defect of a min/max clamp: a code exactly on qmin/qmax got dX 0.5 and half its dScale."""
    s = torch.tensor([0.1], requires_grad=True)
    qmin, qmax = -8, 7
    x = torch.tensor(
        [qmin * 0.1, qmax * 0.1, (qmax + 0.7) * 0.1, (qmin - 0.7) * 0.1, 0.33], requires_grad=True
    )
    y = fake_quantize(x, s, torch.zeros(1), qmin, qmax)
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    inside = ((y.detach() - x.detach()) / 0.1)[[0, 1, 4]].sum()
    torch.testing.assert_close(s.grad, (inside + qmax + qmin).reshape(1))


def test_bound_gradients_go_only_to_clipped_values() -> None:
    x = torch.tensor([-0.8, 0.7, 0.9, -1.0, 0.2])
    qmin = torch.tensor(-8.0, requires_grad=True)
    qmax = torch.tensor(7.0, requires_grad=True)
    z = torch.zeros(1, requires_grad=True)
    fake_quantize(x, torch.tensor([0.1]), z, qmin, qmax).sum().backward()
    torch.testing.assert_close(qmax.grad, torch.tensor(0.1))  # 0.9 only; 0.7 sits on qmax: inside
    torch.testing.assert_close(qmin.grad, torch.tensor(0.1))  # -1.0 only
    torch.testing.assert_close(z.grad, torch.tensor([-0.2]))  # -s per clipped value


@pytest.mark.parametrize("per_channel", [False, True])
def test_inf_and_huge_inputs_saturate_in_training(per_channel: bool) -> None:
    fq = _module(4, True, True, False, "per_channel" if per_channel else "per_tensor", True)
    s = torch.tensor([0.01, 0.02]) if per_channel else torch.tensor([0.01])
    _set_qparams(fq, s, torch.zeros_like(s))
    x = torch.tensor([[float("inf"), -float("inf"), 3e38, -3e38, 0.043]] * 2, requires_grad=True)
    y = fq(x)
    sv = s.reshape(-1, 1)
    expected = torch.tensor([[7.0, -8.0, 7.0, -8.0, 0.0]]) * sv
    expected[:, 4] = torch.round(0.043 / sv[:, 0]) * sv[:, 0]
    torch.testing.assert_close(y.detach(), expected.expand_as(y))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(fq.scale.grad).all()
    assert torch.isfinite(fq.bit_offset.grad).all()
    assert x.grad[:, :4].eq(0).all()


def test_tiny_learned_scale_trains_what_inference_runs() -> None:
    """No epsilon added to the step: a scale of 1e-9 quantizes the same with and without autograd."""
    fq = _module(8, True, True, True, "per_channel", True)
    s = torch.tensor([1e-9, 3e-10, 0.02])
    _set_qparams(fq, s, torch.zeros(3))
    x = torch.randn(3, 64) * torch.tensor([1e-7, 2e-8, 1.0])[:, None]
    train = fq(x)
    with torch.no_grad():
        infer = fq(x)
    assert torch.equal(train.detach(), infer)


def test_full_range_symmetric_ties_round_like_torch() -> None:
    """x * (1/s), not x / s: the two land on different sides of a .5 tie for some scales."""
    g = torch.Generator().manual_seed(0)
    s = torch.rand(64, generator=g) * 0.1 + 1e-3
    x = (torch.randint(-128, 128, (64, 32), generator=g) + 0.5) * s[:, None]
    ref = torch.fake_quantize_per_channel_affine(x, s, torch.zeros(64, dtype=torch.int32), 0, -128, 127)
    assert torch.equal(fake_quantize(x, s, torch.zeros(64), -128, 127, ch_axis=0), ref)


@pytest.mark.parametrize("gran", GRANULARITY)
def test_empty_tensor_passes_through_like_torch_ao(gran: str) -> None:
    fq = _module(4, True, True, False, gran, True)
    empty = torch.empty(0, GROUP)
    assert fq(empty).shape == empty.shape  # observer on: nothing to observe
    _set_qparams(
        fq,
        torch.full((6,) if gran != "per_tensor" else (1,), 0.1),
        torch.zeros(6 if gran != "per_tensor" else 1),
    )
    assert fq(empty).numel() == 0
    frozen = FrozenFakeQuantize.from_fake_quant(fq)
    assert frozen(empty).numel() == 0
    assert fake_quantize(empty, torch.tensor([0.1]), torch.zeros(1), -8, 7).numel() == 0
