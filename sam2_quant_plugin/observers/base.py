"""Shared base of this package's observers: a torch.ao ``ObserverBase`` whose qparams come from numerics."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CalibrationError
from ..numerics import qparams_from_minmax, reduce_minmax
from ..torchao_adapter import ObserverBase

_PER_CHANNEL = (torch.per_channel_symmetric, torch.per_channel_affine)
_SYMMETRIC = (torch.per_channel_symmetric, torch.per_tensor_symmetric)


class RangeObserver(ObserverBase):
    """Records a [min, max] range per tensor or per channel; subclasses decide how (``_observe``).

    Accepts the keyword arguments torch.ao passes to observers (dtype, qscheme, quant_min, quant_max,
    ch_axis, is_dynamic, reduce_range, eps, factory_kwargs), so it works in a ``QConfig`` and inside
    torch.ao's ``FakeQuantize``. ``enabled`` is a uint8 buffer so it replicates under DDP.
    """

    min_val: torch.Tensor
    max_val: torch.Tensor
    enabled: torch.Tensor

    def __init__(
        self,
        dtype: torch.dtype = torch.quint8,
        qscheme: torch.qscheme = torch.per_tensor_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        ch_axis: int = 0,
        is_dynamic: bool = False,
        reduce_range: bool = False,
        eps: float = 2**-23,
        factory_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        info = torch.iinfo(dtype)
        self.quant_min = info.min if quant_min is None else int(quant_min)
        self.quant_max = info.max if quant_max is None else int(quant_max)
        if reduce_range:
            self.quant_max = self.quant_min + (self.quant_max - self.quant_min) // 2
        self.qscheme = qscheme
        self.ch_axis = ch_axis
        self.eps = eps
        self.reduce_range = False
        fk = factory_kwargs or {}
        self.register_buffer("min_val", torch.tensor([], **fk))
        self.register_buffer("max_val", torch.tensor([], **fk))
        self.register_buffer("enabled", torch.tensor([1], dtype=torch.uint8))

    @property
    def per_channel(self) -> bool:
        return self.qscheme in _PER_CHANNEL

    @property
    def symmetric(self) -> bool:
        return self.qscheme in _SYMMETRIC

    @property
    def axis(self) -> int | None:
        return self.ch_axis if self.per_channel else None

    def set_qrange(self, quant_min: int, quant_max: int) -> None:
        """Follow a bit-width change of the owning fake-quant (learnable bits)."""
        self.quant_min, self.quant_max = int(quant_min), int(quant_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled[0] == 1 and x.numel() > 0:
            xd = x.detach().float()
            if not torch.isfinite(xd).all():
                raise CalibrationError(
                    f"{type(self).__name__} saw NaN/Inf values; check the input images and the model "
                    "weights (a corrupt checkpoint?) before calibrating"
                )
            lo, hi = self._observe(xd)
            self._store(lo, hi)
        return x

    def _observe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Range of this batch; subclasses override. Default: plain min/max."""
        return reduce_minmax(x, self.axis)

    def _store(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Running union with the ranges seen so far."""
        if self.min_val.numel() == 0:
            self.min_val.resize_(lo.shape).copy_(lo)
            self.max_val.resize_(hi.shape).copy_(hi)
        else:
            self.min_val.copy_(torch.minimum(self.min_val, lo))
            self.max_val.copy_(torch.maximum(self.max_val, hi))

    @property
    def observed(self) -> bool:
        return self.min_val.numel() > 0

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if not self.observed:
            raise CalibrationError(
                f"{type(self).__name__} has seen no data; run calibrate() (or a forward pass) before "
                "freezing, converting or exporting"
            )
        return qparams_from_minmax(
            self.min_val, self.max_val, self.quant_min, self.quant_max, self.symmetric, self.eps
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for key in ("min_val", "max_val"):
            if prefix + key in state_dict:
                getattr(self, key).resize_(state_dict[prefix + key].shape)
        # torch.ao observers (a fixed-bit FakeQuantize checkpoint) keep eps as a buffer and have no flag.
        if prefix + "eps" in state_dict:
            self.eps = float(state_dict.pop(prefix + "eps").reshape(-1)[0])
        state_dict.setdefault(prefix + "enabled", self.enabled.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"qrange=[{self.quant_min}, {self.quant_max}], qscheme={self.qscheme}"
