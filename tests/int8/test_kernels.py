"""The NumPy kernel models: exact int32 vs AVX2 pairwise int16 saturation, and the pair-headroom check."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_quant_plugin.int8 import matmul_integer_to_float, pair_headroom, qgemm, quantize_linear
from sam2_quant_plugin.int8.kernels import INT16_MAX, INT16_MIN, saturating_pairs


def naive_avx2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """vpmaddubsw + vpmaddwd, written out: pairs (k, k+1) for even k, each clipped to int16."""
    m, k = a.shape
    out = np.zeros((m, b.shape[1]), dtype=np.int64)
    for i in range(m):
        for j in range(b.shape[1]):
            for p in range(0, k, 2):
                s = int(a[i, p]) * int(b[p, j])
                if p + 1 < k:
                    s += int(a[i, p + 1]) * int(b[p + 1, j])
                out[i, j] += min(max(s, INT16_MIN), INT16_MAX)
    return out


@pytest.mark.parametrize("k", [1, 2, 5, 16, 33])
def test_qgemm_paths_match_their_definition(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.integers(0, 256, (7, k), dtype=np.uint8)
    b = rng.integers(-127, 128, (k, 5)).astype(np.int8)
    assert np.array_equal(qgemm(a, b, "exact"), a.astype(np.int64) @ b.astype(np.int64))
    assert np.array_equal(qgemm(a, b, "avx2"), naive_avx2(a, b))


def test_saturation_needs_two_large_same_sign_weights() -> None:
    a = np.full((1, 2), 255, dtype=np.uint8)
    same = np.array([[127], [127]], dtype=np.int8)
    mixed = np.array([[127], [-127]], dtype=np.int8)
    small = np.array([[64], [64]], dtype=np.int8)  # 255 * 128 = 32640 <= 32767
    assert int(qgemm(a, same, "avx2")[0, 0]) == INT16_MAX  # 64770 clipped
    assert int(qgemm(a, same, "exact")[0, 0]) == 64770
    assert int(qgemm(a, mixed, "avx2")[0, 0]) == 0
    assert int(qgemm(a, small, "avx2")[0, 0]) == 32640
    assert saturating_pairs(same.T) == 1
    assert saturating_pairs(mixed.T) == 0
    assert saturating_pairs(small.T) == 0


def test_seven_bit_magnitude_never_saturates() -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(-64, 65, (64, 97))
    assert saturating_pairs(w) == 0
    assert pair_headroom(w).max() <= INT16_MAX
    a = rng.integers(0, 256, (9, 97), dtype=np.uint8)
    assert np.array_equal(qgemm(a, w.T.astype(np.int8), "avx2"), qgemm(a, w.T.astype(np.int8), "exact"))


def test_pair_headroom_counts_odd_k_with_a_zero_partner() -> None:
    w = np.array([[10, -20, 127]])
    assert pair_headroom(w).tolist() == [[255 * 20, 255 * 127]]


def test_quantize_linear_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -3.0, 300.0], dtype=np.float32)
    assert quantize_linear(x, 1.0, 0).tolist() == [0, 2, 2, 0, 255]
    assert quantize_linear(x, 1.0, 10).tolist() == [10, 12, 12, 7, 255]


def test_matmul_integer_to_float_is_the_dequantized_product() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    b = rng.integers(-20, 21, (6, 3)).astype(np.int8)
    sa, za, sb, bias = (
        0.02,
        117,
        np.array([0.1, 0.2, 0.3], np.float32),
        np.array([1.0, -1.0, 0.5], np.float32),
    )
    ref = ((a.astype(np.float64) - za) * sa) @ (b.astype(np.float64) * sb) + bias
    for path in ("exact", "avx2"):  # small weights: both paths agree
        got = matmul_integer_to_float(a, sa, za, b, sb, bias, path)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="avx2"):
        qgemm(np.zeros((1, 2), np.uint8), np.zeros((2, 1), np.int8), "vnni512")
