"""``FrozenFakeQuantize``: fixed integer bits and fixed qparams, the form export and convert read.

Its forward calls ``torch.fake_quantize_per_{tensor,channel}_affine``, which the TorchScript ONNX
exporter lowers to QuantizeLinear/DequantizeLinear (8-bit ranges); the ONNX package lowers other
ranges to Q -> Clip -> DQ.
"""

from __future__ import annotations

from typing import cast

import torch

from ..numerics import fake_quantize_exact, qrange, to_groups
from ..torchao_adapter import FakeQuantizeBase


class FrozenFakeQuantize(FakeQuantizeBase):
    """Fake-quantize with constant ``bits``, ``scale``, ``zero_point``; no observer, no parameters."""

    scale: torch.Tensor
    zero_point: torch.Tensor

    def __init__(
        self,
        scale: torch.Tensor,
        zero_point: torch.Tensor,
        bits: int,
        signed: bool,
        narrow_range: bool = False,
        ch_axis: int | None = None,
        symmetric: bool = True,
        group_size: int = 0,
    ) -> None:
        super().__init__()
        self.group_size = int(group_size)
        self.bits, self.signed, self.narrow_range, self.symmetric = (
            int(bits),
            bool(signed),
            narrow_range,
            symmetric,
        )
        self.quant_min, self.quant_max = qrange(self.bits, self.signed, narrow_range)
        scale = scale.detach().float().reshape(-1)
        zero_point = zero_point.detach().round().to(torch.int32).reshape(-1)
        self.dtype = torch.qint8 if signed else torch.quint8
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", zero_point)
        self._axis = ch_axis
        self._set_layout()
        self.disable_observer()

    def _set_layout(self) -> None:
        """Per-channel (along the given axis) when there is more than one scale, else per-tensor."""
        axis = self._axis
        self.per_channel = axis is not None and self.scale.numel() > 1
        self.ch_axis = int(axis) if axis is not None and self.per_channel else -1
        if self.per_channel:
            self.qscheme = torch.per_channel_symmetric if self.symmetric else torch.per_channel_affine
        else:
            self.qscheme = torch.per_tensor_symmetric if self.symmetric else torch.per_tensor_affine

    @classmethod
    def placeholder(cls, fq: FakeQuantizeBase) -> FrozenFakeQuantize:
        """A frozen quantizer shaped like ``fq`` (bits, signedness, axis, groups) with unit qparams.

        It becomes the real one when a frozen model's ``state_dict`` is loaded into it (the scales'
        shape and the per-channel layout follow the loaded tensors): no calibration needed.
        """
        # torch.ao sets these at run time: nn.Module.__getattr__ types them ``Tensor | Module``
        qmin, qmax = int(cast(int, fq.quant_min)), int(cast(int, fq.quant_max))
        bits = int(getattr(fq, "bits", int(qmax - qmin).bit_length()))
        signed = qmin < 0
        narrow = (qmin, qmax) != qrange(bits, signed)
        per_channel = fq.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
        symmetric = fq.qscheme in (torch.per_channel_symmetric, torch.per_tensor_symmetric)
        axis = int(cast(int, fq.ch_axis)) if per_channel else None
        return cls(
            torch.ones(1), torch.zeros(1), bits, signed, narrow, axis, symmetric, getattr(fq, "group_size", 0)
        )

    @classmethod
    def from_fake_quant(cls, fq: FakeQuantizeBase) -> FrozenFakeQuantize:
        """Freeze a torch.ao ``FakeQuantize`` or a :class:`LearnableBitFakeQuantize` at its current state."""
        scale, zp = fq.calculate_qparams()
        bits = getattr(fq, "bits", None)
        # torch.ao sets these at run time: nn.Module.__getattr__ types them ``Tensor | Module``
        qmin, qmax = int(cast(int, fq.quant_min)), int(cast(int, fq.quant_max))
        signed = qmin < 0
        if bits is None:
            bits = int(qmax - qmin).bit_length()  # 255 codes (narrow) and 256 codes are both 8 bits
        narrow = (qmin, qmax) != qrange(bits, signed)
        if narrow and (qmin, qmax) != qrange(bits, signed, narrow=True):
            raise ValueError(f"range [{qmin}, {qmax}] is not a {bits}-bit range")
        per_channel = fq.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
        symmetric = fq.qscheme in (torch.per_channel_symmetric, torch.per_tensor_symmetric)
        axis = int(cast(int, fq.ch_axis)) if per_channel else None
        frozen = cls(scale, zp, bits, signed, narrow, axis, symmetric, getattr(fq, "group_size", 0))
        frozen.fake_quant_enabled.copy_(fq.fake_quant_enabled)
        return frozen

    def quant_view(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor the scales index: ``x`` itself, or its ``[-1, group_size]`` group view."""
        return to_groups(x, self.group_size) if self.group_size else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_enabled[0] == 0 or x.numel() == 0:
            return x
        if self.group_size:  # exports as Reshape -> Q -> [Clip] -> DQ (axis 0) -> Reshape
            return self._quantize(self.quant_view(x)).reshape(x.shape)
        return self._quantize(x)

    def _quantize(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quantize_exact(
            x,
            self.scale,
            self.zero_point,
            self.quant_min,
            self.quant_max,
            self.ch_axis if self.per_channel else None,
        )

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.scale, self.zero_point

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for key in ("scale", "zero_point"):
            if prefix + key in state_dict:
                getattr(self, key).resize_(state_dict[prefix + key].shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._set_layout()

    def extra_repr(self) -> str:
        return (
            f"bits={self.bits}, qrange=[{self.quant_min}, {self.quant_max}], per_channel={self.per_channel}"
            + (f", group_size={self.group_size}" if self.group_size else "")
        )
