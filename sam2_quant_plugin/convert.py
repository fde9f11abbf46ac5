"""``convert``: a frozen fake-quant model -> torch CPU int8 modules (torch.ao ``convert``).

Layers with weight *and* activation bits become torch.ao quantized modules (fbgemm/x86 int8 kernels)
between a ``Quantize`` built from the layer's input quantizer and a ``DeQuantize``. Weight-only layers
become plain float modules holding their fake-quantized weights (torch has no CPU kernel for them).
Numerics match the fake-quant model when activation bits are 8; the int8 kernels also round each
layer's output to uint8, which the fake-quant model does not do.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from .api import INPUT_FQ, WEIGHT_FQ, freeze, quant_state, remove_input_hook
from .errors import Int8Error
from .fake_quant.frozen import FrozenFakeQuantize
from .int8.host import host_int8_path
from .int8.safety import CONVERT_FIX, saturation_report
from .torchao_adapter import QAT_TYPES, ao_convert, dequantize_module, quantize_module, select_engine

log = logging.getLogger(__name__)


class QuantizedLayer(nn.Module):
    """float -> quantize -> int8 layer -> dequantize -> float."""

    def __init__(self, quant: nn.Module, module: nn.Module, dequant: nn.Module) -> None:
        super().__init__()
        self.quant, self.module, self.dequant = quant, module, dequant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.module(self.quant(x)))


def _float_twin(mod: nn.Module) -> nn.Module:
    """A plain nn.Linear / nn.Conv2d with the fake-quantized weight of a torch.ao QAT Linear / Conv2d."""
    if not isinstance(mod, QAT_TYPES):
        raise TypeError(f"expected a torch.ao QAT Linear or Conv2d, got {type(mod).__name__}")
    with torch.no_grad():
        w = mod.weight_fake_quant(mod.weight)
    out: nn.Linear | nn.Conv2d = mod.to_float()  # same shape, weight and bias copied
    out.weight.data.copy_(w)
    return out


def _input_quantize(fq: FrozenFakeQuantize) -> nn.Module:
    if fq.per_channel:
        raise ValueError("torch int8 kernels need per-tensor activation quantization")
    scale, zp = float(fq.scale), int(fq.zero_point)
    if fq.signed:  # the int8 kernels take uint8 activations: shift the codes, same real values
        zp += 128
    return quantize_module(scale, zp, torch.quint8)


def _refuse_saturation(frozen: nn.Module) -> None:
    """On a CPU whose torch int8 kernels saturate u8 x s8 pairs (no VNNI), refuse layers that would."""
    path = host_int8_path()
    if path.torch != "avx2":
        return
    report = saturation_report(frozen)
    if not report.safe:
        raise Int8Error(
            f"this CPU's torch int8 kernels saturate int16 pairs ({path.describe()}), and "
            f"{report.summary()}; the converted model would be wrong here. {CONVERT_FIX}."
        )


def convert(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """torch CPU int8 model from a prepared (frozen or not) model. Returns an eval-mode model.

    Raises :class:`~sam2_quant_plugin.errors.Int8Error` on a CPU without VNNI when a layer's 8-bit weights
    could saturate the int16 pair sums of torch's u8 x s8 kernels (use a 7-bit-magnitude recipe: w8a8).
    """
    state = quant_state(model)
    if not state.frozen:
        model = freeze(model, inplace=inplace)
    elif not inplace:
        model = copy.deepcopy(model)
    model = model.cpu()  # torch's int8 kernels (fbgemm / x86 / onednn) are CPU kernels
    state = quant_state(model)
    engine = select_engine()
    _refuse_saturation(model)
    n_int8 = n_folded = 0
    for name, plan in state.plans.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        mod = getattr(parent, attr)
        if not hasattr(mod, WEIGHT_FQ):
            continue  # activation-only layer: stays float with its input fake-quant
        if plan.activation is None:
            setattr(parent, attr, _float_twin(mod))
            n_folded += 1
            continue
        if getattr(mod.weight_fake_quant, "group_size", 0):
            raise ValueError(
                f"{name}: torch int8 kernels take per-channel weights, not per_group ones; export this "
                "recipe to ONNX (MatMulNBits / DequantizeLinear) or make the layer's weight per_channel"
            )
        quant = _input_quantize(getattr(mod, INPUT_FQ))
        remove_input_hook(mod)
        delattr(mod, INPUT_FQ)
        wrapper = QuantizedLayer(quant, mod, dequantize_module())
        setattr(parent, attr, wrapper)
        ao_convert(wrapper)
        n_int8 += 1
    log.info("convert (%s): %d int8 layers, %d weight-only layers folded to float", engine, n_int8, n_folded)
    return model.eval()
