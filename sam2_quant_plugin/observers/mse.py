"""MSE-optimal clipping observer for low-bit weights: searches the clip ratio per channel."""

from __future__ import annotations

from typing import Any

import torch

from ..numerics import mse_clip_search
from .base import RangeObserver
from .registry import register_observer


@register_observer("mse")
class MSEClipObserver(RangeObserver):
    """Range = the shrink of min/max that minimises ||x - fq(x)||_p at the current bit width.

    For weights (one tensor) the search reruns only when the tensor or the bit width changes, and the
    newest result replaces the old. With ``average=True`` (activations) per-batch optima are averaged.
    """

    def __init__(
        self,
        *args: Any,
        grid: int = 100,
        min_ratio: float = 0.3,
        norm: float = 2.0,
        average: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.grid, self.min_ratio, self.norm = int(grid), float(min_ratio), float(norm)
        self.average = bool(average)
        self._key: tuple[object, ...] | None = None
        self._batches = 0

    def _observe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mse_clip_search(
            x, self.quant_min, self.quant_max, self.axis, self.symmetric, self.grid, self.min_ratio, self.norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.data_ptr(), x._version, tuple(x.shape), self.quant_min, self.quant_max)
        if self.enabled[0] == 1 and key == self._key:
            return x
        self._key = key
        return super().forward(x)

    def _store(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        if not self.average or self.min_val.numel() == 0 or self.min_val.shape != lo.shape:
            self._batches = 0
            self.min_val.resize_(lo.shape).zero_()
            self.max_val.resize_(hi.shape).zero_()
        n = self._batches
        self.min_val.mul_(n / (n + 1)).add_(lo / (n + 1))
        self.max_val.mul_(n / (n + 1)).add_(hi / (n + 1))
        self._batches = n + 1

    def set_qrange(self, quant_min: int, quant_max: int) -> None:
        if (quant_min, quant_max) != (self.quant_min, self.quant_max):
            self._batches = 0  # the optimal clip depends on the bit width: start over
            self.min_val.resize_(0)
            self.max_val.resize_(0)
        super().set_qrange(quant_min, quant_max)
