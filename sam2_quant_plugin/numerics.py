"""Pure quantization maths: integer ranges, straight-through rounding, qparams, clip search.

Nothing here imports torch.ao; observers and fake-quant modules are thin layers over these functions.
"""

from __future__ import annotations

import numbers

import torch

from .errors import BitsError
from .fq_autograd import FakeQuantizeFn

MIN_BITS = 2
MAX_BITS = 8
# How weight codes are counted on disk: "packed" = exactly their width (ideal bit packing, the package's
# size estimate); "onnx" = what the exporter's int4 format writes (INT4 for widths <= 4, int8 above).
STORAGE_MODES = ("packed", "onnx", "nbits")


def check_bits(bits: int, *, what: str = "bits", lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    """Return ``bits`` as int if it lies in [lo, hi]; otherwise raise :class:`BitsError`."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Real) or not float(bits).is_integer():
        raise BitsError(f"{what}={bits!r} is not an integer; use a whole number in {lo}..{hi}")
    b = int(bits)
    if not lo <= b <= hi:
        raise BitsError(f"{what}={b} is outside the supported range {lo}..{hi}; pick a value in {lo}..{hi}")
    return b


def storage_bits(bits: int, storage: str = "packed") -> int:
    """Bits one weight code of width ``bits`` occupies when stored the ``storage`` way (see STORAGE_MODES)."""
    if storage == "packed":
        return int(bits)
    if storage == "onnx":  # INT4 (opset 21) up to 4 bits, int8 above
        return 4 if bits <= 4 else 8
    if storage == "nbits":  # MatMulNBits' kernel widths 2, 4, 8
        return 2 if bits <= 2 else 4 if bits <= 4 else 8
    raise ValueError(f"storage={storage!r} is unknown; use one of {STORAGE_MODES}")


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """Integer range of a ``bits``-wide code: signed [-2^(b-1), 2^(b-1)-1], unsigned [0, 2^b-1].

    ``narrow`` drops the most negative code (signed) or the top code (unsigned), the usual
    choice for symmetric weights so that +/- clip at the same magnitude.
    """
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (lo + 1, hi) if narrow else (lo, hi)
    hi = 2**bits - 1
    return (0, hi - 1) if narrow else (0, hi)


def qrange_tensor(
    bits: torch.Tensor, signed: bool, narrow: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`qrange` for a (possibly fractional, differentiable) bit tensor."""
    two = torch.tensor(2.0, dtype=bits.dtype, device=bits.device)
    if signed:
        hi = two ** (bits - 1) - 1
        lo = -hi if narrow else -hi - 1
        return lo, hi
    hi = two**bits - 1
    return torch.zeros_like(hi), (hi - 1 if narrow else hi)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass (value exactly ``round(x)``), identity gradient in the backward pass."""
    return torch.round(x).detach() + (x - x.detach())


def ste_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Clamp in the forward pass, identity gradient (also at the bounds) in the backward pass.

    ``torch.clamp`` zeroes the gradient outside [lo, hi], so a parameter initialised at a bound could
    never move away from it; this keeps it trainable.
    """
    return torch.clamp(x, lo, hi).detach() + (x - x.detach())


def grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale the gradient of ``x`` by ``factor`` without changing its value (LSQ step-size trick).

    The value is exactly ``x`` (``x - x.detach()`` is 0), so a learned step equals the one inference reads.
    """
    return x.detach() + (x - x.detach()) * factor


def reduce_minmax(x: torch.Tensor, ch_axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max of ``x`` over all elements, or per slice along ``ch_axis``."""
    if ch_axis is None:
        return x.min().reshape(1), x.max().reshape(1)
    flat = x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def to_groups(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """``x [N, ...]`` -> ``[N * K / group_size, group_size]``, K = elements per output channel.

    Group-wise quantization is per-channel quantization along axis 0 of this view: row
    ``n * (K / g) + j`` holds elements ``j*g .. (j+1)*g - 1`` of output channel ``n``.
    """
    k = x[0].numel() if x.dim() > 1 else x.numel()
    if x.dim() < 2 or k % group_size:
        raise ValueError(
            f"a weight of shape {tuple(x.shape)} has {k} elements per output channel, not a multiple of "
            f"group_size={group_size}; use granularity: per_channel for this layer or another group_size"
        )
    return x.reshape(-1, group_size)


def check_group_size(group_size: int) -> int:
    """``group_size`` if it is a power of two in [16, 256] (the sizes MatMulNBits blocks take)."""
    g = int(group_size)
    if isinstance(group_size, bool) or g != group_size or g < 16 or g > 256 or g & (g - 1):
        raise ValueError(f"group_size={group_size!r} must be a power of two in 16..256 (e.g. 32, 64, 128)")
    return g


def channel_view(t: torch.Tensor, x: torch.Tensor, ch_axis: int | None) -> torch.Tensor:
    """Reshape a per-channel vector ``t`` so it broadcasts against ``x`` along ``ch_axis``."""
    if ch_axis is None or t.numel() == 1:
        return t.reshape(())
    shape = [1] * x.dim()
    shape[ch_axis] = -1
    return t.reshape(shape)


def qparams_from_minmax(
    min_val: torch.Tensor,
    max_val: torch.Tensor,
    qmin: int,
    qmax: int,
    symmetric: bool,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and integer zero point that map [min_val, max_val] (widened to hold 0) onto [qmin, qmax].

    Symmetric: zero point is 0 for signed ranges and the mid code for unsigned ones, scale from the
    largest magnitude. Affine: scale spans the range, zero point rounds and clamps into [qmin, qmax].
    """
    if not (torch.isfinite(min_val).all() and torch.isfinite(max_val).all()):
        raise ValueError("range holds NaN or Inf; the observed tensor is not finite")
    min_neg = torch.minimum(min_val, torch.zeros_like(min_val))
    max_pos = torch.maximum(max_val, torch.zeros_like(max_val))
    if symmetric:
        amax = torch.maximum(-min_neg, max_pos)
        scale = torch.clamp(amax / ((qmax - qmin) / 2), min=eps)
        zp = torch.zeros_like(scale) if qmin < 0 else torch.full_like(scale, (qmin + qmax + 1) // 2)
    else:
        scale = torch.clamp((max_pos - min_neg) / (qmax - qmin), min=eps)
        zp = torch.clamp(qmin - torch.round(min_neg / scale), qmin, qmax)
    return scale.float(), zp.to(torch.int32)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    qmin: int | torch.Tensor,
    qmax: int | torch.Tensor,
    ch_axis: int | None = None,
) -> torch.Tensor:
    """Quantize-dequantize, differentiable in x, scale, zero point and the bounds.

    The value is bit-identical to ``torch.fake_quantize_per_{tensor,channel}_affine`` (``x * (1/s)``,
    round half to even, inf saturates); the gradients are those of torch's learnable kernels with
    ``grad_factor=1``, a code exactly on qmin / qmax counting as inside (see :mod:`.fq_autograd`).
    """
    if x.numel() == 0:
        return x
    s = channel_view(scale, x, ch_axis)
    z = channel_view(zero_point.to(s.dtype), x, ch_axis)
    lo = torch.as_tensor(qmin, dtype=s.dtype, device=x.device)
    hi = torch.as_tensor(qmax, dtype=s.dtype, device=x.device)
    return FakeQuantizeFn.apply(x, s, z, lo, hi)


def fake_quantize_exact(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, ch_axis: int | None
) -> torch.Tensor:
    """torch's fused fake-quant kernel (the op the TorchScript ONNX exporter lowers to Q/DQ).

    Bit-identical between a learnable quantizer in inference and its frozen copy.
    """
    zp = zero_point.round().to(torch.int32).reshape(-1)
    if ch_axis is not None:
        return torch.fake_quantize_per_channel_affine(x, scale.reshape(-1), zp, ch_axis, qmin, qmax)
    return torch.fake_quantize_per_tensor_affine(x, scale.reshape(-1), zp, qmin, qmax)


def quantize_to_int(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, ch_axis: int | None
) -> torch.Tensor:
    """Integer codes of ``x`` (int32), the storage form of a frozen weight."""
    s = channel_view(scale, x, ch_axis)
    z = channel_view(zero_point.to(torch.float32), x, ch_axis)
    return torch.clamp(torch.round(x / s) + z, qmin, qmax).to(torch.int32)


def mse_clip_search(
    x: torch.Tensor,
    qmin: int,
    qmax: int,
    ch_axis: int | None,
    symmetric: bool = True,
    grid: int = 100,
    min_ratio: float = 0.3,
    norm: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice clipped range [lo, hi] that minimises the Lp quantization error of ``x``.

    Tries ``grid`` shrink ratios in [min_ratio, 1] of the min/max range and keeps, per channel, the
    ratio with the smallest sum |x - fq(x)|^norm. Returns the clipped (min, max).

    Every ratio's quantize-dequantize runs in place in one preallocated buffer, with the arithmetic of
    :func:`fake_quantize` (so the errors are bit-identical to it): allocating a fresh tensor per ratio
    made the search page-fault bound, 20x slower (12 s for a 768x3072 weight at ``grid=100``).
    """
    with torch.no_grad():
        x = x.detach().float()
        lo, hi = reduce_minmax(x, ch_axis)
        flat = x.reshape(1, -1) if ch_axis is None else x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)
        flat = flat.contiguous()
        buf = torch.empty_like(flat)
        best_err = torch.full_like(lo, float("inf"))
        best_lo, best_hi = lo.clone(), hi.clone()
        for r in torch.linspace(min_ratio, 1.0, grid, dtype=torch.float32).tolist():
            c_lo, c_hi = lo * r, hi * r
            scale, zp = qparams_from_minmax(c_lo, c_hi, qmin, qmax, symmetric)
            s, z = scale[:, None], zp.to(scale.dtype)[:, None]
            torch.mul(flat, torch.reciprocal(s), out=buf)
            buf.round_().add_(z).clamp_(qmin, qmax).sub_(z).mul_(s).sub_(flat)
            err = (buf.square_() if norm == 2.0 else buf.abs_().pow_(norm)).sum(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_lo = torch.where(better, c_lo, best_lo)
            best_hi = torch.where(better, c_hi, best_hi)
    return best_lo, best_hi


def histogram_percentile(
    hist: torch.Tensor, lo: float, hi: float, q_low: float, q_high: float
) -> tuple[float, float]:
    """Values at quantiles ``q_low``/``q_high`` (0..1) of a histogram spanning [lo, hi].

    Linear interpolation inside the bin where the cumulative count crosses the quantile.
    """
    total = float(hist.sum())
    if total <= 0:
        raise ValueError("empty histogram: the observer saw no data")
    cdf = torch.cumsum(hist.double(), 0) / total
    width = (hi - lo) / hist.numel()

    def at(q: float) -> float:
        idx = int(torch.searchsorted(cdf, torch.tensor([q], dtype=torch.float64)).clamp(max=hist.numel() - 1))
        prev = float(cdf[idx - 1]) if idx > 0 else 0.0
        frac = (q - prev) / max(float(cdf[idx]) - prev, 1e-12)
        return lo + (idx + min(max(frac, 0.0), 1.0)) * width

    return at(q_low), at(q_high)


def bits_tensor_from_offset(offset: torch.Tensor, min_bits: int, max_bits: int) -> torch.Tensor:
    """Integer-valued bit width from a learnable offset: STE-round, then STE-clamp into [min, max]."""
    return ste_clamp(ste_round(offset + min_bits), float(min_bits), float(max_bits))
