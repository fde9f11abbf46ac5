"""The verbs: ``prepare_qat`` -> ``calibrate`` -> (train) -> ``freeze`` -> ``convert`` / export.

Each layer a recipe selects gets torch.ao QAT treatment (``Linear``/``Conv2d`` -> ``qat.Linear``/
``qat.Conv2d`` with this package's weight fake-quant) and, when the recipe gives activation bits, a
fake-quant on the layer's *input* in a forward pre-hook. Attention modules a recipe's ``attention:`` rules
select get fake-quants on their MatMul inputs (q, k, v, probabilities; :mod:`.attention`). Module names are
unchanged, so SAM 2 code, state_dicts and hooks keep working.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from .attention import ATTN_FQ, add_attention_quant
from .device import model_device
from .errors import RecipeError
from .fake_quant.frozen import FrozenFakeQuantize
from .numerics import qrange, storage_bits
from .qconfig import layer_qconfigs, make_fake_quant
from .recipe.attention import AttentionRule
from .recipe.attention_resolve import AttentionPlan, resolve_attention
from .recipe.io import load_recipe
from .recipe.resolve import LayerPlan, resolve
from .recipe.schema import Granularity, LayerRule, QuantSpec, Recipe
from .torchao_adapter import QCONFIG_ATTR, WEIGHT_FQ, FakeQuantizeBase, ObserverBase, ao_prepare_qat

log = logging.getLogger(__name__)

#: The attribute a layer holds its input-activation fake-quant in (``WEIGHT_FQ``, re-exported from the
#: torch.ao boundary: its weight's).
INPUT_FQ = "input_fake_quant"
_STATE_ATTR = "sam2_quant_state"


@dataclass
class QuantState:
    """What ``prepare_qat`` did, kept on the model (survives deepcopy)."""

    recipe: Recipe
    plans: dict[str, LayerPlan]
    frozen: bool = False
    history: list[str] = field(default_factory=list)
    attention: dict[str, AttentionPlan] = field(default_factory=dict)


def quant_state_or_none(model: nn.Module) -> QuantState | None:
    """What ``prepare_qat`` did to ``model``, or None for a float model."""
    return cast("QuantState | None", getattr(model, _STATE_ATTR, None))


def is_prepared(model: nn.Module) -> bool:
    """True when ``prepare_qat`` made ``model`` (frozen or not)."""
    return quant_state_or_none(model) is not None


def quant_state(model: nn.Module) -> QuantState:
    state = quant_state_or_none(model)
    if state is None:
        raise RecipeError("model is not prepared: call prepare_qat(model, recipe) first")
    return state


def _quantize_input(module: nn.Module, args: tuple) -> tuple:
    return (getattr(module, INPUT_FQ)(args[0]), *args[1:])


def remove_input_hook(module: nn.Module) -> bool:
    """Remove the forward pre-hook ``prepare_qat`` put on ``module`` to run its ``INPUT_FQ``.

    Returns whether there was one; the fake-quant module itself stays (the caller decides where it runs).
    """
    hooks = module._forward_pre_hooks
    ids = [k for k, h in hooks.items() if h is _quantize_input]
    for k in ids:
        del hooks[k]
    return bool(ids)


def prepare_qat(model: nn.Module, recipe: Recipe | str | Path, *, inplace: bool = False) -> nn.Module:
    """Insert fake-quant per the recipe through torch.ao ``prepare_qat``; returns the prepared model.

    ``recipe`` is a :class:`Recipe`, a YAML path, or a shipped recipe name (``w8a8``). The model's
    train/eval mode is kept. Raises :class:`RecipeError` if a rule matches nothing or the model is
    already prepared.
    """
    if is_prepared(model):
        raise RecipeError("model is already prepared; call prepare_qat on the float model")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    plans = {n: p for n, p in resolve(model, recipe).items() if p.quantized}
    attention = {n: p for n, p in resolve_attention(model, recipe).items() if p.quantized}
    if not plans and not attention:
        raise RecipeError(f"recipe {recipe.name!r} quantizes no layer of this model; check its targets/rules")
    model = model if inplace else copy.deepcopy(model)
    qconfigs = layer_qconfigs(plans)  # what sq.qconfig_mapping(model, recipe) gives torch.ao users
    if qconfigs:  # an activation-only recipe needs no torch.ao module swap
        ao_prepare_qat(model, qconfigs)
    for name, qc in qconfigs.items():
        # torch.ao leaves a qconfig wrapping a local closure (device factory kwargs) on each layer and its
        # fake-quant children, which breaks torch.save(model); the observers exist now, so the layer gets
        # back the plain, picklable qconfig (convert needs it) and its children none.
        layer = model.get_submodule(name)
        for sub in layer.modules():
            setattr(sub, QCONFIG_ATTR, None)
        setattr(layer, QCONFIG_ATTR, qc)
    for name, plan in plans.items():
        if plan.activation is not None:
            mod = model.get_submodule(name)
            mod.add_module(INPUT_FQ, make_fake_quant(plan.activation).to(model_device(mod)))
            mod.register_forward_pre_hook(_quantize_input)
    for name, aplan in attention.items():
        mod = model.get_submodule(name)
        add_attention_quant(mod, aplan, model_device(mod))
    setattr(model, _STATE_ATTR, QuantState(recipe, plans, attention=attention))
    wbits = [p.weight_bits for p in plans.values() if p.weight_bits]
    log.info(
        "prepared %d layers and %d attention modules with recipe %r (weight bits %s..%s)",
        len(plans),
        len(attention),
        recipe.name,
        min(wbits, default=None),
        max(wbits, default=None),
    )
    return model


#: ``weight`` / ``activation``: a layer's; ``attn_q`` / ``attn_k`` / ``attn_v`` / ``attn_p``: an attention
#: module's MatMul inputs (q, k transposed, v, softmax probabilities).
Kind = Literal["weight", "activation", "attn_q", "attn_k", "attn_v", "attn_p"]
ATTN_KINDS: tuple[Kind, ...] = ("attn_q", "attn_k", "attn_v", "attn_p")


@dataclass(frozen=True)
class QuantizerInfo:
    """One quantizer of a prepared model: its layer's plan and the fake-quant module that carries it out.

    ``bits`` is the module's integer width now (after :func:`freeze`, the plan's); ``qmin``/``qmax`` the
    code range for it; ``ch_axis`` the axis with one scale per slice (None: per-tensor; per-group: axis 0 of
    the ``[-1, group_size]`` view); ``group_size`` the elements per scale of a per-group weight, else None.
    """

    layer: str
    kind: Kind
    bits: int
    qmin: int
    qmax: int
    signed: bool
    granularity: Granularity
    ch_axis: int | None
    group_size: int | None
    module: FakeQuantizeBase = field(compare=False, repr=False)

    @property
    def module_name(self) -> str:
        """The fake-quant's module name: ``<layer>.weight_fake_quant``, ``<layer>.input_fake_quant`` or,
        for an attention module, ``<module>.attn_q_fake_quant`` (k, v, p alike)."""
        attr = {"weight": WEIGHT_FQ, "activation": INPUT_FQ, **ATTN_FQ}[self.kind]
        return f"{self.layer}.{attr}"

    def to_dict(self) -> dict[str, object]:
        """The JSON-able description (no module): what an exported file records per quantizer."""
        d: dict[str, object] = {
            "bits": self.bits,
            "qmin": self.qmin,
            "qmax": self.qmax,
            "signed": self.signed,
            "granularity": self.granularity,
        }
        if self.ch_axis is not None:
            d["ch_axis"] = self.ch_axis
        if self.group_size:
            d["group_size"] = self.group_size
        return d


def _info(layer: str, kind: Kind, spec: QuantSpec, fq: Any) -> QuantizerInfo:
    """``fq``: this package's fake-quant (learnable or frozen), typed Any as nn.Module attributes are."""
    bits, signed = int(fq.bits), bool(fq.signed)
    qmin, qmax = qrange(bits, signed, bool(fq.narrow_range))
    axis = int(fq.ch_axis) if fq.per_channel else None
    group = spec.group_size if spec.granularity == "per_group" else None
    return QuantizerInfo(layer, kind, bits, qmin, qmax, signed, spec.granularity, axis, group, fq)


def quantizers(model: nn.Module) -> dict[tuple[str, str], QuantizerInfo]:
    """(layer, kind) -> every quantizer of a prepared model: layers in plan order (``"weight"`` |
    ``"activation"``), then attention modules (``"attn_q"``, ``"attn_k"``, ``"attn_v"``, ``"attn_p"``).

    Each entry is the resolved plan (granularity, group size) joined with the fake-quant module (bits, range,
    signedness, axis). Layers :func:`convert` replaced hold no fake-quant and are left out. Raises
    :class:`RecipeError` for a model ``prepare_qat`` did not make.
    """
    out: dict[tuple[str, str], QuantizerInfo] = {}
    for name, plan in quant_state(model).plans.items():
        mod = model.get_submodule(name)
        kinds: tuple[tuple[Kind, QuantSpec | None, str], ...] = (
            ("weight", plan.weight, WEIGHT_FQ),
            ("activation", plan.activation, INPUT_FQ),
        )
        for kind, spec, attr in kinds:
            fq = getattr(mod, attr, None)
            if spec is not None and isinstance(fq, FakeQuantizeBase):
                out[(name, kind)] = _info(name, kind, spec, fq)
    for name, aplan in quant_state(model).attention.items():
        mod = model.get_submodule(name)
        for akind in ATTN_KINDS:
            fq = getattr(mod, ATTN_FQ[akind], None)
            if aplan.spec is not None and isinstance(fq, FakeQuantizeBase):
                out[(name, akind)] = _info(name, akind, aplan.spec, fq)
    return out


def fake_quants(model: nn.Module) -> dict[str, FakeQuantizeBase]:
    """Name -> every fake-quant module in the model."""
    return {n: m for n, m in model.named_modules() if isinstance(m, FakeQuantizeBase)}


def set_observers(model: nn.Module, enabled: bool) -> None:
    """Turn statistics collection on or off everywhere (fake-quants and output observers)."""
    for m in model.modules():
        if isinstance(m, FakeQuantizeBase):
            m.enable_observer(enabled)
        elif isinstance(m, ObserverBase) and isinstance(flag := getattr(m, "enabled", None), torch.Tensor):
            flag.fill_(1 if enabled else 0)


def set_fake_quant(model: nn.Module, enabled: bool) -> None:
    """Turn fake quantization on or off everywhere (off: the prepared model computes in float)."""
    for m in fake_quants(model).values():
        m.enable_fake_quant(enabled)


def freeze(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fix every quantizer: learned bits rounded to integers, scales constant, observers off.

    Returns an eval-mode model whose fake-quants are :class:`FrozenFakeQuantize`, ready for
    :func:`convert` or ONNX export; the stored plans are updated to the frozen bit widths.
    """
    state = quant_state(model)
    model = model if inplace else copy.deepcopy(model)
    state = quant_state(model)
    set_observers(model, False)
    for name, fq in list(fake_quants(model).items()):
        if isinstance(fq, FrozenFakeQuantize):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, FrozenFakeQuantize.from_fake_quant(fq))
    state.plans = {n: _plan_with_current_bits(model, p) for n, p in state.plans.items()}
    state.frozen = True
    return model.eval()


def _plan_with_current_bits(model: nn.Module, plan: LayerPlan) -> LayerPlan:
    """``plan`` with the integer bit widths its quantizers hold now (learned, searched or frozen)."""
    mod = model.get_submodule(plan.name)
    w, a = plan.weight, plan.activation
    wfq, afq = getattr(mod, WEIGHT_FQ, None), getattr(mod, INPUT_FQ, None)
    if w is not None and wfq is not None:
        w = w.with_bits(wfq.bits)
    if a is not None and afq is not None:
        a = a.with_bits(afq.bits)
    return replace(plan, weight=w, activation=a)


def current_recipe(model: nn.Module, name: str | None = None) -> Recipe:
    """The model's per-layer precision as a recipe of exact-name rules (integer bits as they are now).

    This is how learned or searched bit widths become a YAML file the core loads again.
    """
    state = quant_state(model)
    plans = [_plan_with_current_bits(model, p) for p in state.plans.values()]
    rules = [LayerRule(match=p.name, weight=p.weight, activation=p.activation) for p in plans]
    attention = [
        AttentionRule(p.name, p.spec.bits, p.spec.observer, p.spec.observer_args, p.probs)
        for p in state.attention.values()
        if p.spec is not None
    ]
    base = state.recipe
    return Recipe(
        name=name or f"{base.name}-resolved",
        description=f"per-layer bits resolved from {base.name!r}",
        model=base.model,
        targets=base.targets,
        default=None,
        rules=tuple(rules),
        attention=tuple(attention),
    )


def weight_bits_summary(model: nn.Module, storage: str = "packed") -> dict[str, float]:
    """Parameter-weighted average weight bits and quantized weight bytes over the prepared layers.

    ``avg_weight_bits`` is always the nominal width; ``weight_bytes`` counts each code as
    :func:`~sam2_quant_plugin.numerics.storage_bits` says for ``storage`` ("packed" or "onnx").
    """
    state = quant_state(model)
    total_bits = stored_bits = total_params = 0.0
    for lname in state.plans:
        fq = getattr(model.get_submodule(lname), WEIGHT_FQ, None)
        if fq is None:
            continue
        n = float(model.get_submodule(lname).get_parameter("weight").numel())
        total_bits += fq.bits * n
        stored_bits += storage_bits(fq.bits, storage) * n
        total_params += n
    avg = total_bits / total_params if total_params else 0.0
    return {"avg_weight_bits": avg, "quantized_params": total_params, "weight_bytes": stored_bits / 8}
