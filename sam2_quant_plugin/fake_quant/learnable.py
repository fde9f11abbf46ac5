"""``LearnableBitFakeQuantize``: a torch.ao fake-quant whose bit width and step size train.

Bit width is stored Brevitas-style as a float offset above ``min_bits``: ``b = clamp(round(min + o))``
with straight-through rounding *and* clamping, so the offset keeps a gradient even at a bound. The
step size (``scale``) is LSQ-style: initialised from the observer, then learned with LSQ's gradient
scaling. The gradient reaches the bits two ways: through the clip bounds ``[qmin(b), qmax(b)]`` and
through the step size, which (at constant range) shrinks as ``b`` grows. When the rounded width
changes, the stored step is rescaled so the covered range stays put. Forward and gradients match torch's
kernels (``docs/GRADIENTS.md``): training runs the quantizer inference runs, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import CalibrationError
from ..numerics import (
    bits_tensor_from_offset,
    fake_quantize,
    fake_quantize_exact,
    grad_scale,
    qrange,
    qrange_tensor,
    to_groups,
)
from ..observers.minmax import MinMaxRangeObserver
from ..torchao_adapter import FakeQuantizeBase

#: smallest step size the quantizer uses (training and inference alike)
SCALE_EPS = 1e-12


class LearnableBitFakeQuantize(FakeQuantizeBase):
    """Fake-quantize with a learnable (or fixed) bit width and a learnable step size.

    Works inside torch.ao ``prepare_qat`` (accepts ``factory_kwargs``), with ``enable_observer`` /
    ``disable_fake_quant`` (uint8 flag buffers, DDP-safe), and with ``convert`` (``calculate_qparams``,
    ``dtype``, ``qscheme``, ``ch_axis``). Per-tensor, per-channel, or per-group (``group_size`` > 0:
    per-channel along axis 0 of :func:`~sam2_quant_plugin.numerics.to_groups`' view, one scale per
    ``group_size`` weights), signed or unsigned.
    """

    scale: nn.Parameter
    bit_offset: nn.Parameter
    zero_point: torch.Tensor
    int_bits: torch.Tensor
    scale_initialized: torch.Tensor

    def __init__(
        self,
        observer: type = MinMaxRangeObserver,
        bits: int = 8,
        min_bits: int = 2,
        max_bits: int = 8,
        learnable_bits: bool = True,
        learn_scale: bool = True,
        signed: bool = True,
        symmetric: bool = True,
        narrow_range: bool = False,
        per_channel: bool = False,
        ch_axis: int = 0,
        group_size: int = 0,
        factory_kwargs: dict[str, Any] | None = None,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__()
        if not min_bits <= bits <= max_bits:
            raise ValueError(f"bits={bits} outside [min_bits={min_bits}, max_bits={max_bits}]")
        if group_size and (not per_channel or ch_axis != 0):
            raise ValueError("group_size needs per_channel=True and ch_axis=0 (groups are rows of a view)")
        self.group_size = int(group_size)
        self.min_bits, self.max_bits = int(min_bits), int(max_bits)
        self.signed, self.symmetric, self.narrow_range = signed, symmetric, narrow_range
        self.per_channel, self.ch_axis = per_channel, ch_axis
        self.dtype = torch.qint8 if signed else torch.quint8
        if per_channel:
            self.qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        else:
            self.qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        qmin, qmax = qrange(bits, signed, narrow_range)
        self.activation_post_process = observer(
            dtype=self.dtype,
            qscheme=self.qscheme,
            quant_min=qmin,
            quant_max=qmax,
            ch_axis=ch_axis,
            **observer_kwargs,
        )
        self.bit_offset = nn.Parameter(torch.tensor([float(bits - min_bits)]), requires_grad=learnable_bits)
        self.scale = nn.Parameter(torch.tensor([1.0]), requires_grad=learn_scale)
        self.register_buffer("zero_point", torch.tensor([0.0]))
        self.register_buffer("int_bits", torch.tensor([bits], dtype=torch.int32))
        self.register_buffer("scale_initialized", torch.tensor([0], dtype=torch.uint8))

    # -- bit width ---------------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Current integer bit width (rounded, clamped)."""
        return int(bits_tensor_from_offset(self.bit_offset.detach(), self.min_bits, self.max_bits).item())

    @property
    def learnable_bits(self) -> bool:
        return self.bit_offset.requires_grad

    @property
    def quant_min(self) -> int:
        return qrange(int(self.int_bits), self.signed, self.narrow_range)[0]

    @property
    def quant_max(self) -> int:
        return qrange(int(self.int_bits), self.signed, self.narrow_range)[1]

    def set_bits(self, bits: int) -> None:
        """Jump to ``bits`` (kept inside [min_bits, max_bits]); the step rescales to keep the range."""
        bits = max(self.min_bits, min(self.max_bits, int(bits)))
        with torch.no_grad():
            self.bit_offset.fill_(float(bits - self.min_bits))
        self._sync_bits(bits)

    def _sync_bits(self, bits: int) -> None:
        old = int(self.int_bits)
        if bits == old:
            return
        old_lo, old_hi = qrange(old, self.signed, self.narrow_range)
        lo, hi = qrange(bits, self.signed, self.narrow_range)
        with torch.no_grad():
            if self.scale_initialized[0] == 1:
                ratio = (old_hi - old_lo) / (hi - lo)
                self.scale.mul_(ratio)
                # keep the real value of code zero: zp' = lo + (zp - old_lo) / ratio
                self.zero_point.copy_(torch.round(lo + (self.zero_point - old_lo) / ratio))
            self.int_bits.fill_(bits)
        self.activation_post_process.set_qrange(lo, hi)

    def quant_view(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor the scales index: ``x`` itself, or its ``[-1, group_size]`` group view."""
        return to_groups(x, self.group_size) if self.group_size else x

    # -- forward -----------------------------------------------------------------------------------
    def _init_from_observer(self) -> None:
        s, z = self.activation_post_process.calculate_qparams()
        with torch.no_grad():
            if self.scale.shape != s.shape:
                self.scale.data = s.detach().clone()
                self.zero_point.data = z.detach().float().clone()
            else:
                self.scale.copy_(s)
                self.zero_point.copy_(z.float())
            self.scale_initialized.fill_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:  # as torch.ao's FakeQuantize: nothing to observe or quantize
            return x
        if self.group_size:
            return self._forward(self.quant_view(x)).reshape(x.shape)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b = bits_tensor_from_offset(self.bit_offset, self.min_bits, self.max_bits)
        self._sync_bits(int(b.detach().item()))
        if self.observer_enabled[0] == 1:
            self.activation_post_process(x.detach())
            self._init_from_observer()
        if self.fake_quant_enabled[0] == 0:
            return x
        if self.scale_initialized[0] == 0:
            raise RuntimeError(
                "LearnableBitFakeQuantize used with the observer off before any calibration; run "
                "calibrate() (observers on) first or load a state_dict that holds a scale"
            )
        per_ch = self.per_channel and self.scale.numel() > 1
        if per_ch and self.scale.numel() != x.shape[self.ch_axis]:
            what = f"groups of {self.group_size}" if self.group_size else "channels"
            raise CalibrationError(
                f"this quantizer holds {self.scale.numel()} scales but the tensor has "
                f"{x.shape[self.ch_axis]} {what}: the loaded state was saved with another granularity or "
                "group_size. Prepare the model with the recipe the checkpoint was made with, or recalibrate."
            )
        if not torch.is_grad_enabled():  # inference: the exact kernel FrozenFakeQuantize uses
            return fake_quantize_exact(
                x, *self.calculate_qparams(), self.quant_min, self.quant_max, self.ch_axis if per_ch else None
            )
        qmin, qmax = qrange_tensor(b, self.signed, self.narrow_range)
        span = (qmax - qmin).detach() / (qmax - qmin)  # == 1 in value; d/db keeps the range fixed
        n = x.numel() / (self.scale.numel() if per_ch else 1)
        step = grad_scale(self.scale, 1.0 / math.sqrt(max(n, 1.0) * float(qmax.detach()))) * span
        step = step.abs().clamp_min(SCALE_EPS)  # the value calculate_qparams returns, bit for bit
        return fake_quantize(x, step, self.zero_point, qmin, qmax, self.ch_axis if per_ch else None)

    # -- torch.ao convert / export ----------------------------------------------------------------
    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if self.scale_initialized[0] == 0:  # the placeholder scale 1.0 would freeze/convert silently
            raise CalibrationError(
                "LearnableBitFakeQuantize has no scale yet; run calibrate() (or a forward pass with the "
                "observer on) before freezing, converting or exporting"
            )
        self._sync_bits(self.bits)
        return self.scale.detach().abs().clamp_min(SCALE_EPS), self.zero_point.detach().round().to(
            torch.int32
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):  # type: ignore[no-untyped-def]
        """Also accepts fixed-bit checkpoints (torch.ao ``FakeQuantize`` or a learnable one frozen).

        Missing ``bit_offset``/``int_bits`` keep the configured bit width; a ``scale`` of another shape
        (per-channel vs not yet observed) is taken as is; an integer ``zero_point`` is converted.
        """
        for key, like in (("scale", self.scale), ("zero_point", self.zero_point)):
            if prefix + key in state_dict:
                v = state_dict[prefix + key]
                if v.shape != like.shape:
                    like.data = torch.empty_like(v, dtype=like.dtype)
                state_dict[prefix + key] = v.to(like.dtype)
        fixed_bit = prefix + "bit_offset" not in state_dict
        if fixed_bit:
            state_dict[prefix + "bit_offset"] = self.bit_offset.detach().clone()
            state_dict.setdefault(prefix + "int_bits", self.int_bits.clone())
            if prefix + "scale" in state_dict:
                state_dict.setdefault(prefix + "scale_initialized", torch.tensor([1], dtype=torch.uint8))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        if prefix + "int_bits" in state_dict:
            self.activation_post_process.set_qrange(self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        kind = "learnable" if self.learnable_bits else "fixed"
        return (
            f"bits={self.bits} ({kind}, [{self.min_bits}, {self.max_bits}]), signed={self.signed}, "
            f"per_channel={self.per_channel}, learn_scale={self.scale.requires_grad}"
            + (f", group_size={self.group_size}" if self.group_size else "")
        )
