"""Exact models of the x86 int8 GEMM kernels that run a W8A8 Linear (NumPy in and out; no onnxruntime).

A fused W8A8 Linear multiplies *uint8 activation codes* (the raw codes, before the zero point is taken
off) by *int8 weight codes*. Two families of x86 kernels do that:

- ``exact``: AVX512-VNNI / AVX-VNNI (``vpdpbusd``), AMX, and every u8 x u8 or 16-bit path: each product
  goes straight into an int32 accumulator, so the integer result is exact.
- ``avx2``: AVX2 and AVX-512 without VNNI (onnxruntime's MLAS ``QgemmU8S8KernelAvx2``, fbgemm,
  oneDNN/OpenVINO): ``vpmaddubsw`` multiplies adjacent byte pairs along K and adds each pair into a
  *saturating int16*, then ``vpmaddwd`` widens to int32. Pairs are ``(k, k+1)`` for even ``k`` (the
  packed-B layout keeps 4 consecutive K values per 32-bit lane); an odd K is padded with a zero.

Whether a pair can saturate depends only on its two weight codes: with ``a`` in ``[0, 255]`` the pair
sum reaches ``255 * (|w0| + |w1|)`` when both weights have the same sign, and at most ``255 * 127`` when
their signs differ. So ``|w| <= 64`` everywhere (7-bit magnitude) can never saturate.
"""

from __future__ import annotations

import numpy as np
import torch

INT16_MIN, INT16_MAX = -32768, 32767
A_CODE_MAX = 255  # uint8 activation codes
PATHS = ("exact", "avx2")


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"int8 kernel path must be one of {PATHS}, got {path!r}")
    return path


def _pad_even(a: np.ndarray, axis: int) -> np.ndarray:
    if a.shape[axis] % 2 == 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, 1)
    return np.pad(a, pad)


def qgemm(a_codes: np.ndarray, b_codes: np.ndarray, path: str = "exact") -> np.ndarray:
    """``sum_k a[m, k] * b[k, n]`` as the kernel computes it: int32 ``[M, N]``.

    ``a_codes`` uint8 ``[M, K]`` (raw activation codes), ``b_codes`` int8 ``[K, N]`` (weight codes).
    ``path='avx2'`` saturates every adjacent-K pair sum to int16 before accumulating.
    """
    a = np.asarray(a_codes).astype(np.int32)
    b = np.asarray(b_codes).astype(np.int32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"qgemm needs a [M, K] and b [K, N], got {a.shape} and {b.shape}")
    if _check_path(path) == "exact":
        return _exact(a, b)
    a, b = _pad_even(a, 1), _pad_even(b, 0)
    # A pair index whose weights cannot reach the int16 limit in any column adds exactly: all of those go
    # through one BLAS call; the others are summed pair by pair and clipped (torch int32: exact and fast).
    risky = (pair_headroom(b.T) > INT16_MAX).any(axis=0)  # [K/2]
    safe_b = b.copy()
    safe_b[0::2][risky] = 0
    safe_b[1::2][risky] = 0
    acc = torch.from_numpy(_exact(a, safe_b))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    pair, tmp = torch.empty_like(acc), torch.empty_like(acc)
    for i in np.flatnonzero(risky):
        k = 2 * int(i)
        torch.mul(ta[:, k : k + 1], tb[k : k + 1], out=pair)
        torch.mul(ta[:, k + 1 : k + 2], tb[k + 1 : k + 2], out=tmp)
        acc.add_(pair.add_(tmp).clamp_(INT16_MIN, INT16_MAX))
    return acc.numpy()


def _exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer product through float64 BLAS (integers below 2**53 are exact; |sums| < 2**31 here)."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int32)


def quantize_linear(
    x: np.ndarray, scale: float, zero_point: int, qmin: int = 0, qmax: int = 255
) -> np.ndarray:
    """ONNX ``QuantizeLinear`` to uint8: ``saturate(round_half_even(x / scale) + zero_point)``."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, qmin, qmax).astype(np.uint8)


def matmul_integer_to_float(
    a_codes: np.ndarray,
    a_scale: float,
    a_zero_point: int,
    b_codes: np.ndarray,
    b_scale: np.ndarray,
    bias: np.ndarray | None = None,
    path: str = "exact",
) -> np.ndarray:
    """onnxruntime's fused ``MatMulIntegerToFloat`` (symmetric int8 weights): float32 ``[M, N]``.

    ``(qgemm(a, b) - a_zero_point * colsum(b)) * (a_scale * b_scale[n]) + bias``; the zero-point term is
    exact (the kernels add it after the saturating part), so only ``qgemm`` depends on ``path``.
    """
    b = np.asarray(b_codes).astype(np.int32)
    acc = qgemm(a_codes, b, path) - np.int32(a_zero_point) * b.sum(axis=0, dtype=np.int32)[None, :]
    scale = np.float32(a_scale) * np.asarray(b_scale, dtype=np.float32).reshape(1, -1)
    out = acc.astype(np.float32) * scale
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float32).reshape(1, -1)
    return out


def pair_headroom(w_codes: np.ndarray) -> np.ndarray:
    """Worst-case |pair sum| of each adjacent-K weight pair over all uint8 activations, per output row.

    ``w_codes`` int ``[N, K]`` (a Linear's weight layout). Returns int64 ``[N, ceil(K/2)]``: ``255 * (|w0| +
    |w1|)`` for same-sign pairs, ``255 * max(|w0|, |w1|)`` otherwise. Above 32767 the pair can saturate.
    """
    w = _pad_even(np.asarray(w_codes).astype(np.int64), 1)
    w0, w1 = w[:, 0::2], w[:, 1::2]
    same = np.sign(w0) * np.sign(w1) > 0
    worst = np.where(same, np.abs(w0) + np.abs(w1), np.maximum(np.abs(w0), np.abs(w1)))
    return A_CODE_MAX * worst


def risky_rows(w_codes: np.ndarray) -> np.ndarray:
    """Output rows of ``w_codes [N, ...]`` that could saturate int16 under *any* pairing of their inputs.

    The kernels' layouts differ (adjacent K for MatMul in MLAS and fbgemm; a convolution's K order depends
    on its layout), so this bound ignores which inputs get paired: a row is safe when its two largest
    same-sign codes sum to at most 128 (``255 * 128 = 32640``). Bool ``[N]``.
    """
    w = np.asarray(w_codes).astype(np.int64).reshape(len(w_codes), -1)
    if w.shape[1] < 2:
        return np.zeros(len(w), dtype=bool)
    pos = np.sort(np.clip(w, 0, None), axis=1)[:, -2:].sum(axis=1)
    neg = np.sort(np.clip(-w, 0, None), axis=1)[:, -2:].sum(axis=1)
    return A_CODE_MAX * np.maximum(pos, neg) > INT16_MAX


def saturating_pairs(w_codes: np.ndarray) -> int:
    """How many adjacent-K weight pairs of ``w_codes [N, K]`` can saturate int16 on the ``avx2`` path."""
    return int((pair_headroom(w_codes) > INT16_MAX).sum())
