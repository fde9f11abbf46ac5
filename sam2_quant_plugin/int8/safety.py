"""Which int8-kernel layers of a frozen model can saturate on AVX2-class CPUs, read from its quantizers.

A layer may run on a u8 x s8 kernel after export when its input has an 8-bit quantizer and its weight a
quantizer of at most 8 bits: onnxruntime fuses a Linear into ``MatMulIntegerToFloat``, a Conv2d whose
output is quantized too into ``QLinearConv``; torch ``convert`` makes fbgemm kernels of them. Its weight
codes alone decide whether two products can pass the int16 limit (:func:`~.kernels.risky_rows`, which
holds for any pairing of inputs), so the verdict needs no data and no runtime.

Quantized attention MatMuls (a recipe's ``attention:`` rules) multiply two activations. With both inputs
unsigned (the only form recipes make) onnxruntime runs them on its U8U8 kernels (``MatMulIntegerToFloat`` /
``QLinearMatMul``), which widen both operands to 16 bits before ``vpmaddwd`` (32-bit sums): exact on every
x86 CPU, so they are listed as safe. A signed input (a hand-built model) would take a U8S8 path whose int16
pair sums depend on the data, which no check here can bound: such a module is reported risky.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from ..api import ATTN_KINDS, INPUT_FQ, WEIGHT_FQ, quant_state
from ..attention import ATTN_FQ
from ..errors import ConfigError, ExportError
from ..fake_quant.frozen import FrozenFakeQuantize
from ..numerics import quantize_to_int
from ..recipe.resolve import LayerPlan
from .kernels import INT16_MAX, pair_headroom, risky_rows

log = logging.getLogger(__name__)
TARGET_CPUS = ("any", "vnni")


@dataclass(frozen=True)
class Int8Layer:
    """The integer form of one fused W8A8 Linear: what the kernel sees."""

    name: str
    a_scale: float
    a_zero_point: int  # on the uint8 grid (signed activations are shifted by 128, as onnxruntime does)
    w_codes: np.ndarray  # int8 [N, K]
    w_scale: np.ndarray  # float32 [N]
    bias: np.ndarray | None

    @property
    def risky_pairs(self) -> int:
        """Adjacent-K pairs that saturate in the MLAS / fbgemm MatMul layout (what the emulator models)."""
        return int((pair_headroom(self.w_codes) > INT16_MAX).sum())


def _kernel_layers(model: nn.Module) -> dict[str, tuple[nn.Module, np.ndarray]]:
    """Name -> (layer, int weight codes [N, ...]) for every layer that may run on a u8 x s8 kernel."""
    state = quant_state(model)
    if not state.frozen:
        raise ValueError("int8 checks need a frozen model: call freeze(model) first")
    out: dict[str, tuple[nn.Module, np.ndarray]] = {}
    for name in state.plans:
        layer = model.get_submodule(name)
        afq, wfq = getattr(layer, INPUT_FQ, None), getattr(layer, WEIGHT_FQ, None)
        if not isinstance(layer, (nn.Linear, nn.Conv2d)) or afq is None or wfq is None:
            continue
        if afq.bits != 8 or afq.per_channel or wfq.bits > 8 or wfq.group_size or not wfq.symmetric:
            continue
        axis = wfq.ch_axis if wfq.per_channel else None
        w = layer.weight.detach().float()
        codes = quantize_to_int(w, wfq.scale, wfq.zero_point, wfq.quant_min, wfq.quant_max, axis)
        out[name] = (layer, codes.reshape(len(codes), -1).numpy())
    return out


def int8_layers(model: nn.Module) -> dict[str, Int8Layer]:
    """Every Linear of a frozen model that fuses into a u8 x s8 kernel, in integer form."""
    out = {}
    for name, (layer, codes) in _kernel_layers(model).items():
        if not isinstance(layer, nn.Linear):
            continue
        # a frozen model (checked by _kernel_layers): its fake-quants are FrozenFakeQuantize
        afq = cast(FrozenFakeQuantize, layer.get_submodule(INPUT_FQ))
        wfq = cast(FrozenFakeQuantize, layer.get_submodule(WEIGHT_FQ))
        scale = wfq.scale.detach().float().reshape(-1)
        if scale.numel() == 1:
            scale = scale.expand(codes.shape[0])
        zp = int(afq.zero_point.reshape(-1)[0]) + (128 if afq.signed else 0)
        bias = None if layer.bias is None else layer.bias.detach().float().numpy()
        out[name] = Int8Layer(
            name,
            float(afq.scale.reshape(-1)[0]),
            zp,
            codes.astype(np.int8),
            scale.numpy().astype(np.float32),
            bias,
        )
    return out


@dataclass(frozen=True)
class SaturationReport:
    """Per int8-kernel layer, how many output channels can saturate int16 on AVX2-class CPUs."""

    layers: dict[str, tuple[int, int]]  # name -> (risky output channels, output channels)

    @property
    def risky_layers(self) -> list[str]:
        return [n for n, (r, _) in self.layers.items() if r]

    @property
    def safe(self) -> bool:
        return not self.risky_layers

    def within(self, names: Iterable[str]) -> SaturationReport:
        """The report restricted to the layers ``names`` (e.g. those lowered in one graph of a bundle)."""
        keep = set(names)
        return SaturationReport({n: v for n, v in self.layers.items() if n in keep})

    def summary(self) -> str:
        if not self.layers:
            return "no int8-kernel layer (weight-only or float): nothing can saturate"
        if self.safe:
            return f"all {len(self.layers)} int8-kernel layers are saturation-free on every x86 CPU"
        risky = self.risky_layers
        share = sum(self.layers[n][0] for n in risky) / sum(p for _, p in self.layers.values())
        return (
            f"{len(risky)} of {len(self.layers)} int8-kernel layers can saturate int16 on CPUs without VNNI "
            f"({share:.1%} of their output channels), e.g. {risky[0]}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "safe": self.safe,
            "risky_layers": self.risky_layers,
            "layers": {n: {"risky_channels": r, "channels": c} for n, (r, c) in self.layers.items()},
            "summary": self.summary(),
        }


def saturation_report(model: nn.Module) -> SaturationReport:
    """Check a frozen model's int8-kernel layers against the AVX2 int16 limit (no data needed)."""
    with torch.no_grad():
        layers = {n: (int(risky_rows(c).sum()), len(c)) for n, (_, c) in _kernel_layers(model).items()}
    layers.update(attention_matmuls(model))
    return SaturationReport(layers)


def attention_matmuls(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Attention module -> (risky MatMuls, 2) for each module with quantized attention: 0 when all four
    inputs are unsigned (U8U8, exact everywhere), 2 when one is signed (U8S8, not provable)."""
    out: dict[str, tuple[int, int]] = {}
    for name, plan in quant_state(model).attention.items():
        mod = model.get_submodule(name)
        fqs = [getattr(mod, ATTN_FQ[k], None) for k in ATTN_KINDS]
        if plan.spec is None or any(fq is None for fq in fqs):
            continue  # float attention: no integer kernel
        out[name] = (2 if any(bool(getattr(fq, "signed", True)) for fq in fqs) else 0, 2)
    return out


SEVEN_BIT_FIX = (
    "Fix: use a recipe whose int8 weights have 7-bit magnitude (the shipped w8a8 / w8a8_fidelity: "
    "narrow_range 7-bit, GPTQ-rounded)"
)
UNSAFE_FIX = (
    f"{SEVEN_BIT_FIX}, or pass --target-cpu vnni (target_cpu='vnni') if the file will only run on CPUs "
    "with AVX512-VNNI / AVX-VNNI"
)
#: torch's int8 kernels run on this CPU only, so a convert() here has no "other CPU" to target
CONVERT_FIX = (
    f"{SEVEN_BIT_FIX}, or convert on a CPU with AVX512-VNNI / AVX-VNNI; the ONNX export of the frozen model "
    "(sq.onnx, target_cpu='vnni') is the way to ship full 8-bit weights to VNNI hosts"
)


def check_target_cpu(target_cpu: str) -> str:
    """``target_cpu`` if it is one of :data:`TARGET_CPUS`, else a :class:`ConfigError` naming them."""
    if target_cpu not in TARGET_CPUS:
        raise ConfigError(
            f"target_cpu must be one of {TARGET_CPUS}, got {target_cpu!r}. Fix: pass one of them."
        )
    return target_cpu


def plan_risk(plans: Mapping[str, LayerPlan]) -> list[str]:
    """Layers a recipe may run on a u8 x s8 kernel with weights that may reach 8 bits (checked before
    calibration: with 7 bits or fewer no weight pair can saturate, with 8 it almost always can)."""
    out = []
    for name, p in plans.items():
        if (
            p.type_name not in ("Linear", "Conv2d")
            or p.weight is None
            or p.activation is None
            or p.activation.bits != 8
        ):
            continue
        top = p.weight.max_bits if p.weight.learnable else p.weight.bits
        if top >= 8 and p.weight.granularity != "per_group":
            out.append(name)
    return out


def check_recipe_target(qmodel: nn.Module, target_cpu: str) -> None:
    """Refuse, before calibration, a prepared model whose int8-kernel layers get 8-bit weights while the
    file must be right on ``any`` CPU (:func:`plan_risk`); the frozen model is checked again at export."""
    check_target_cpu(target_cpu)
    state = quant_state(qmodel)
    risky = plan_risk(state.plans)
    if risky and target_cpu == "any":
        raise ExportError(
            f"recipe {state.recipe.name!r} gives {len(risky)} int8-kernel layer(s) 8-bit weights (e.g. "
            f"{risky[0]}), which saturate int16 on CPUs without VNNI. {UNSAFE_FIX}."
        )
