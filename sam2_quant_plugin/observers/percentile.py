"""Histogram/percentile observer for activations with outliers (attention, GELU outputs)."""

from __future__ import annotations

from typing import Any

import torch

from ..numerics import histogram_percentile
from .base import RangeObserver
from .registry import register_observer


@register_observer("percentile")
class PercentileObserver(RangeObserver):
    """Per-tensor range from percentiles of a running histogram of every value seen.

    Affine: [P(100 - percentile), P(percentile)] of x. Symmetric: [-P, P] with P the percentile of |x|.
    When a batch widens the range, the old histogram is re-binned into the new span (each old bin's
    count lands in the new bin holding its centre), so memory stays at ``bins`` counters.
    """

    hist: torch.Tensor
    span: torch.Tensor

    def __init__(self, *args: Any, percentile: float = 99.99, bins: int = 2048, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile={percentile} must be in (50, 100]")
        if self.per_channel:
            raise ValueError("the percentile observer is per-tensor; use granularity: per_tensor")
        self.percentile = float(percentile)
        self.bins = int(bins)
        self.register_buffer("hist", torch.zeros(self.bins, dtype=torch.float64))
        self.register_buffer("span", torch.tensor([0.0, 0.0], dtype=torch.float64))

    def _observe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = x.abs() if self.symmetric else x
        lo, hi = float(v.min()), float(v.max())
        if self.hist.sum() > 0:
            lo, hi = min(lo, float(self.span[0])), max(hi, float(self.span[1]))
            if (lo, hi) != (float(self.span[0]), float(self.span[1])):
                self._rebin(lo, hi)
        else:
            self.span.copy_(torch.tensor([lo, hi], dtype=torch.float64))
        if hi <= lo:  # constant tensor: a degenerate one-value histogram
            self.hist[0] += v.numel()
            return self._as_range(lo)
        self.hist += torch.histc(v.double(), bins=self.bins, min=lo, max=hi)
        q = self.percentile / 100.0
        p_lo, p_hi = histogram_percentile(self.hist, lo, hi, 1.0 - q, q)
        return self._as_range(p_hi) if self.symmetric else (torch.tensor([p_lo]), torch.tensor([p_hi]))

    @staticmethod
    def _as_range(p: float) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([-abs(p)]), torch.tensor([abs(p)])

    def _rebin(self, lo: float, hi: float) -> None:
        old_lo, old_hi = float(self.span[0]), float(self.span[1])
        width = (old_hi - old_lo) / self.bins
        centres = old_lo + (torch.arange(self.bins, dtype=torch.float64) + 0.5) * width
        idx = ((centres - lo) / (hi - lo) * self.bins).floor().clamp(0, self.bins - 1).long()
        new = torch.zeros_like(self.hist)
        new.index_add_(0, idx, self.hist)
        self.hist.copy_(new)
        self.span.copy_(torch.tensor([lo, hi], dtype=torch.float64))

    def _store(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        # The histogram already holds every batch: the newest percentile is the running answer.
        self.min_val.resize_(lo.shape).copy_(lo)
        self.max_val.resize_(hi.shape).copy_(hi)
