"""Typed, versioned recipe schema: frozen dataclasses with strict dict (YAML) conversion.

A recipe is data only. It says, per layer, how weights and input activations are quantized; the
torch.ao objects are built from it in :mod:`sam2_quant_plugin.torchao_adapter` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import RecipeError
from ..numerics import MAX_BITS, MIN_BITS, check_bits, check_group_size
from .attention import AttentionRule, attention_rules_from
from .observer_check import check_observer
from .selector import Selects, duplicate_exact

SCHEMA_VERSION = 1
Granularity = Literal["per_channel", "per_tensor", "per_group"]
GRANULARITIES = ("per_channel", "per_tensor", "per_group")
DEFAULT_GROUP_SIZE = 32
ROUNDINGS = ("nearest", "gptq")
#: ``targets`` of a recipe that names none: every module of the model (the empty prefix)
WHOLE_MODEL: tuple[str, ...] = ("",)
#: QuantSpec fields that are YAML booleans: a quoted "false" is a (truthy) string, never read as false
BOOL_FIELDS = ("learnable", "symmetric", "narrow_range", "learn_scale")


def check_bool(value: Any, name: str) -> bool:
    """``value`` when it is a real bool; else :class:`RecipeError` naming the field, value and fix."""
    if not isinstance(value, bool):
        raise RecipeError(
            f'{name}={value!r:.40} must be true or false, not a {type(value).__name__} (a quoted "false" '
            f"would count as true). Fix: write '{name}: true' or '{name}: false' (YAML booleans, no quotes)."
        )
    return value


@dataclass(frozen=True)
class QuantSpec:
    """How one tensor (a weight or an input activation) is fake-quantized.

    ``bits`` is the fixed width, or the initial width when ``learnable`` is true, in which case the
    width trains as a float in [min_bits, max_bits] and is rounded when the model is frozen.
    ``per_group`` (weights only) gives each run of ``group_size`` consecutive input elements of an output
    channel its own scale: the layout of onnxruntime's ``MatMulNBits`` blocks (default 32).
    ``rounding: gptq`` (Linear weights, symmetric) rounds with GPTQ's error compensation during
    calibration (:mod:`sam2_quant_plugin.gptq`) instead of to nearest.
    """

    bits: int = 8
    learnable: bool = False
    min_bits: int = MIN_BITS
    max_bits: int = MAX_BITS
    granularity: Granularity = "per_tensor"
    symmetric: bool = True
    narrow_range: bool = False
    observer: str = "minmax"
    observer_args: Mapping[str, Any] = field(default_factory=dict)
    learn_scale: bool = False
    group_size: int | None = None
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        for name in BOOL_FIELDS:
            check_bool(getattr(self, name), name)
        # Store the checked ints, so a YAML `8.0` does not reach qrange() as a float.
        object.__setattr__(self, "min_bits", check_bits(self.min_bits, what="min_bits"))
        object.__setattr__(self, "max_bits", check_bits(self.max_bits, what="max_bits"))
        if self.min_bits > self.max_bits:
            raise RecipeError(f"min_bits={self.min_bits} > max_bits={self.max_bits}; swap them")
        object.__setattr__(
            self, "bits", check_bits(self.bits, what="bits", lo=self.min_bits, hi=self.max_bits)
        )
        if self.granularity not in GRANULARITIES:
            raise RecipeError(f"granularity={self.granularity!r} is unknown; use one of {GRANULARITIES}")
        if self.granularity == "per_group":
            try:
                g = check_group_size(self.group_size or DEFAULT_GROUP_SIZE)
            except ValueError as e:
                raise RecipeError(str(e)) from None
            object.__setattr__(self, "group_size", g)
        elif self.group_size is not None:
            raise RecipeError(
                f"group_size={self.group_size} needs granularity: per_group (got {self.granularity!r})"
            )
        if self.rounding not in ROUNDINGS:
            raise RecipeError(f"rounding={self.rounding!r} is unknown; use one of {ROUNDINGS}")
        if self.rounding == "gptq" and not self.symmetric:
            raise RecipeError("rounding: gptq needs symmetric: true (it builds a symmetric grid)")
        if not isinstance(self.observer_args, Mapping):
            raise RecipeError(
                f"observer_args must be a mapping, got {self.observer_args!r:.60}. Fix: e.g. "
                "observer_args: {percentile: 99.9}"
            )
        object.__setattr__(self, "observer_args", dict(self.observer_args))
        check_observer(self)  # builds the fake-quant once: unknown observer or bad arguments fail here

    @property
    def per_channel(self) -> bool:
        """One scale per slice along an axis: per output channel, or per group (axis 0 of the group view)."""
        return self.granularity in ("per_channel", "per_group")

    def with_bits(self, bits: int) -> QuantSpec:
        """A copy at ``bits`` (fixed), keeping every other setting."""
        return replace(self, bits=bits, learnable=False, min_bits=min(self.min_bits, bits))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["observer_args"] = dict(self.observer_args)
        if d["group_size"] is None:
            del d["group_size"]
        if d["rounding"] == "nearest":
            del d["rounding"]
        return d


def weight_spec(**kw: Any) -> QuantSpec:
    """Weight defaults: per-channel symmetric, narrow range, min-max observer."""
    base = {"granularity": "per_channel", "symmetric": True, "narrow_range": True, "observer": "minmax"}
    return QuantSpec(**{**base, **kw})


def activation_spec(**kw: Any) -> QuantSpec:
    """Activation defaults: per-tensor affine (unsigned), percentile observer."""
    base = {"granularity": "per_tensor", "symmetric": False, "observer": "percentile"}
    return QuantSpec(**{**base, **kw})


@dataclass(frozen=True)
class LayerRule(Selects):
    """One rule: a selector and what to do with the layers it selects.

    ``match`` is an exact module name, ``re:<regex>`` (full match on the module name), or
    ``type:<ClassName>`` (``Linear``, ``Conv2d``). ``weight``/``activation`` None means that tensor stays
    float; both None keeps the layer float (an explicit exclusion).
    """

    match: str
    weight: QuantSpec | None = None
    activation: QuantSpec | None = None

    def __post_init__(self) -> None:
        if self.activation is not None and self.activation.granularity == "per_group":
            raise RecipeError(
                f"rule {self.match!r}: granularity per_group is for weights only; "
                "use per_tensor for activations"
            )
        if self.activation is not None and self.activation.rounding != "nearest":
            raise RecipeError(f"rule {self.match!r}: rounding: gptq is for weights only")


@dataclass(frozen=True)
class Recipe:
    """A versioned per-layer quantization recipe.

    ``targets`` are module-name prefixes (e.g. ``image_encoder``) that bound where ``default`` and ``type:``
    rules apply; ``("",)``, the default, is the whole model. Exact and regex rules may name layers anywhere.
    Precedence: exact name > regex > type > default. ``attention`` (optional, :mod:`.attention`) selects
    attention modules the same way and quantizes their activation x activation MatMuls.
    """

    name: str
    default: LayerRule | None = None
    rules: tuple[LayerRule, ...] = ()
    targets: tuple[str, ...] = WHOLE_MODEL
    description: str = ""
    version: int = SCHEMA_VERSION
    model: str | None = None
    attention: tuple[AttentionRule, ...] = ()

    def __post_init__(self) -> None:
        if self.version != SCHEMA_VERSION:
            raise RecipeError(
                f"recipe {self.name!r} has schema version {self.version}; this package reads version "
                f"{SCHEMA_VERSION}. Fix: set 'version: {SCHEMA_VERSION}' in the file and check its keys "
                "against docs (`sam2-quant inspect RECIPE` shows how it resolves)."
            )
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "attention", tuple(self.attention))
        for rules, what, per in (
            (self.rules, "rules", "layer name (merge their settings)"),
            (self.attention, "attention rules", "module name"),
        ):
            twice = duplicate_exact(rules)
            if twice is not None:
                raise RecipeError(
                    f"recipe {self.name!r} has two exact {what} for {twice!r}; the second would silently "
                    f"win. Fix: keep one rule per {per}."
                )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "targets": list(self.targets),
            "default": _rule_to_dict(self.default, with_match=False) if self.default else None,
            "rules": [_rule_to_dict(r) for r in self.rules],
        }
        if self.attention:  # recipes without the section write what they always wrote
            d["attention"] = [r.to_dict() for r in self.attention]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Recipe:
        if not isinstance(data, Mapping):
            raise RecipeError(f"{source}: a recipe must be a mapping at top level, got {type(data).__name__}")
        _no_unknown(
            data,
            {"version", "name", "description", "model", "targets", "default", "rules", "attention"},
            source,
        )
        if "version" not in data:
            raise RecipeError(f"{source}: missing 'version' (this package writes version {SCHEMA_VERSION})")
        default = data.get("default")
        if default is not None and not isinstance(default, Mapping):
            raise RecipeError(
                f"{source}: 'default' must be a mapping or null, got {default!r:.60}. Fix: e.g. "
                "'default: {weight: {bits: 8}}'"
            )
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise RecipeError(f"{source}: 'rules' must be a list of rules")
        targets = data.get("targets") or WHOLE_MODEL  # no targets: the whole model
        if isinstance(targets, str):
            targets = (targets,)
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise RecipeError(
                f"{source}: 'targets' must be a list of module-name prefixes, got {targets!r:.60}. Fix: e.g. "
                "'targets: [image_encoder]'"
            )
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise RecipeError(
                f"{source}: 'version' must be the whole number {SCHEMA_VERSION}, got {version!r:.40}. "
                f"Fix: write 'version: {SCHEMA_VERSION}'."
            )
        return cls(
            version=version,
            name=str(data.get("name") or source),
            description=str(data.get("description") or ""),
            model=data.get("model"),
            targets=tuple(targets),
            default=_rule_from_dict({**default, "match": "<default>"}, f"{source} default")
            if default
            else None,
            rules=tuple(_rule_from_dict(r, f"{source} rules[{i}]") for i, r in enumerate(rules)),
            attention=attention_rules_from(data.get("attention"), source),
        )


def _no_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


_SPEC_KEYS = {f.name for f in fields(QuantSpec)}


def _spec_from_dict(d: Any, where: str, kind: str) -> QuantSpec | None:
    if d is None or d is False or d == "float":
        return None
    if isinstance(d, int) and not isinstance(d, bool):
        d = {"bits": d}
    if not isinstance(d, Mapping):
        raise RecipeError(f"{where}.{kind}: expected a mapping, a bit count, or null; got {d!r}")
    d = dict(d)
    if isinstance(d.get("bits"), Mapping):  # bits: {learnable: true, init: 6, min: 2, max: 8}
        b = dict(d.pop("bits"))
        _no_unknown(b, {"learnable", "init", "min", "max"}, f"{where}.{kind}.bits")
        d.update(
            learnable=b.get("learnable", True),  # checked (a real bool) by QuantSpec
            bits=b.get("init", b.get("max", MAX_BITS)),
            min_bits=b.get("min", MIN_BITS),
            max_bits=b.get("max", MAX_BITS),
        )
    _no_unknown(d, _SPEC_KEYS, f"{where}.{kind}")
    try:
        return (weight_spec if kind == "weight" else activation_spec)(**d)
    except RecipeError as e:
        raise type(e)(f"{where}.{kind}: {e}") from None
    except TypeError as e:
        raise RecipeError(f"{where}.{kind}: {e}") from None


def _rule_from_dict(d: Any, where: str) -> LayerRule:
    if not isinstance(d, Mapping):
        raise RecipeError(f"{where}: a rule must be a mapping with 'match', got {d!r}")
    _no_unknown(d, {"match", "weight", "activation"}, where)
    if not d.get("match"):
        raise RecipeError(f"{where}: rule has no 'match' (exact name, 're:<regex>' or 'type:<Class>')")
    return LayerRule(
        match=str(d["match"]),
        weight=_spec_from_dict(d.get("weight"), where, "weight"),
        activation=_spec_from_dict(d.get("activation"), where, "activation"),
    )


def _rule_to_dict(rule: LayerRule, with_match: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {"match": rule.match} if with_match else {}
    d["weight"] = rule.weight.to_dict() if rule.weight else None
    d["activation"] = rule.activation.to_dict() if rule.activation else None
    return d
