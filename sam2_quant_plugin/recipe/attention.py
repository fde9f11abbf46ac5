"""Attention rules: the recipe's optional ``attention:`` section (activation x activation MatMuls).

A layer rule quantizes a Linear/Conv2d's weight and input. An attention rule quantizes the two products
inside ``torch.nn.functional.scaled_dot_product_attention`` of the modules it selects: ``q @ k^T`` and
``softmax(.) @ v``, whose four inputs (q, k, v and the probabilities) get a per-tensor *unsigned* fake-quant
each. Unsigned on both sides makes onnxruntime run the products on its U8U8 kernels, which are exact on
every x86 CPU (no int16 pair sums, unlike U8S8; docs/INT8_CPUS.md)::

    attention:
      - match: type:MultiScaleAttention   # exact name > re:<regex> > type:<Class> (as layer rules)
        bits: 8                           # q, k, v and probabilities; 2..8 (null: keep this one float)
        observer: minmax                  # q, k, v ranges (any registered observer)
        probs: observed                   # observed (default): calibrated range; fixed: scale 1/(2^bits-1)

``probs: observed`` is the default: a row over many tokens holds probabilities far below 1/255, which the
fixed [0, 1] grid rounds to 0 (Hiera's global-attention blocks at 512 px lost 96-98% of each row's weight:
encoder cosine 0.863 vs 0.99935 observed, docs/ATTENTION.md). ``fixed`` needs no calibration and suits
short rows only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import RecipeError
from ..numerics import check_bits
from .selector import Selects

if TYPE_CHECKING:
    from .schema import QuantSpec

PROBS = ("fixed", "observed")
ATTENTION_KEYS = {"match", "bits", "observer", "observer_args", "probs"}


@dataclass(frozen=True)
class AttentionRule(Selects):
    """Selects attention modules (``match``, the layer-rule syntax) and says how their MatMul inputs are
    quantized. ``bits`` None keeps the selected modules' attention float (an explicit exclusion)."""

    match: str
    bits: int | None = 8
    observer: str = "minmax"
    observer_args: Mapping[str, Any] = field(default_factory=dict)
    probs: Literal["fixed", "observed"] = "observed"

    def __post_init__(self) -> None:
        if not self.match or not isinstance(self.match, str):
            raise RecipeError(
                f"attention rule {self.match!r}: 'match' must be an exact module name, 're:<regex>' or "
                "'type:<Class>'"
            )
        if self.bits is not None:
            try:
                object.__setattr__(self, "bits", check_bits(self.bits, what="bits"))
            except RecipeError as e:
                raise type(e)(f"attention rule {self.match!r}: {e}") from None
        if self.probs not in PROBS:
            raise RecipeError(
                f"attention rule {self.match!r}: probs={self.probs!r} is unknown; use one of {PROBS}"
            )
        if not isinstance(self.observer_args, Mapping):
            raise RecipeError(
                f"attention rule {self.match!r}: observer_args must be a mapping, "
                f"got {self.observer_args!r:.60}"
            )
        object.__setattr__(self, "observer_args", dict(self.observer_args))
        try:
            _ = self.spec  # builds (and checks) the observer once, as layer rules do
        except RecipeError as e:
            raise type(e)(f"attention rule {self.match!r}: {e}") from None

    @property
    def spec(self) -> QuantSpec | None:
        """The q / k / v quantizer: per-tensor, asymmetric unsigned (None: float)."""
        from .schema import activation_spec  # schema imports this module

        if self.bits is None:
            return None
        return activation_spec(
            bits=self.bits, observer=self.observer, observer_args=dict(self.observer_args), symmetric=False
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"match": self.match, "bits": self.bits}
        if self.bits is not None:
            d.update(observer=self.observer, observer_args=dict(self.observer_args), probs=self.probs)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AttentionRule:
        if not isinstance(d, Mapping):
            raise RecipeError(f"{where}: an attention rule must be a mapping with 'match', got {d!r:.60}")
        unknown = sorted(set(d) - ATTENTION_KEYS)
        if unknown:
            raise RecipeError(
                f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(ATTENTION_KEYS)} (q, k, v and "
                "the probabilities are always per-tensor unsigned: the exact U8U8 kernels)"
            )
        if not d.get("match"):
            raise RecipeError(f"{where}: rule has no 'match' (exact name, 're:<regex>' or 'type:<Class>')")
        bits = d.get("bits", 8)
        if bits is False or bits == "float":
            bits = None
        try:
            return cls(
                match=str(d["match"]),
                bits=bits,
                observer=str(d.get("observer", "minmax")),
                observer_args=d.get("observer_args") or {},
                probs=d.get("probs", "observed"),
            )
        except RecipeError as e:
            raise type(e)(f"{where}: {e}") from None


def attention_rules_from(data: Any, source: str) -> tuple[AttentionRule, ...]:
    """The ``attention:`` section (a list of rules, or absent/null) as rules; exact names once each."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise RecipeError(
            f"{source}: 'attention' must be a list of rules, got {data!r:.60}. Fix: e.g. "
            "'attention: [{match: type:MultiScaleAttention, bits: 8}]'"
        )
    return tuple(AttentionRule.from_dict(r, f"{source} attention[{i}]") for i, r in enumerate(data))
