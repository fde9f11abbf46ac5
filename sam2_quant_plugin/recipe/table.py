"""The resolved per-layer table (what ``sam2-quant inspect`` prints)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .attention_resolve import AttentionPlan
from .resolve import LayerPlan


def _bits(spec_bits: int | None, learnable: bool, group_size: int | None = None) -> str:
    if spec_bits is None:
        return "float"
    return f"{spec_bits}{'~' if learnable else ''}{f' g{group_size}' if group_size else ''}"


def _fixed_width(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """``head``, a dashed rule and ``rows``, each column left-aligned to its widest cell."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths)).rstrip()

    return [line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def plan_totals(plans: Mapping[str, LayerPlan]) -> dict[str, float]:
    """Parameter-weighted average weight bits over quantized weights, and the bytes they take.

    Counts weight tensors only (biases stay float in every export), the same basis as
    :func:`sam2_quant_plugin.api.weight_bits_summary` on the prepared model.
    """
    q = [(p.weight_params, p.weight.bits) for p in plans.values() if p.weight is not None]
    params = sum(n for n, _ in q)
    bits = sum(n * b for n, b in q)
    return {
        "layers": len(plans),
        "quantized_weight_params": params,
        "avg_weight_bits": bits / params if params else 0.0,
        "weight_bytes": bits / 8,
        "float_bytes": params * 4,
    }


def format_table(plans: Mapping[str, LayerPlan], *, all_layers: Mapping[str, str] | None = None) -> str:
    """A fixed-width table: name, type, W bits, A bits, params, rule. ``~`` marks learnable bits,
    ``g32`` per-group weight scales (one per 32 inputs).

    ``all_layers`` (name -> type) adds the quantizable layers the recipe leaves float.
    """
    rows = [
        (
            p.name,
            p.type_name,
            _bits(
                p.weight_bits,
                bool(p.weight and p.weight.learnable),
                p.weight.group_size if p.weight else None,
            ),
            _bits(p.activation_bits, bool(p.activation and p.activation.learnable)),
            f"{p.params:,}",
            p.matched_by,
        )
        for p in plans.values()
    ]
    for name, tname in (all_layers or {}).items():
        if name not in plans:
            rows.append((name, tname, "float", "float", "", "(no rule)"))
    out = _fixed_width(("layer", "type", "W bits", "A bits", "params", "rule"), rows)
    t = plan_totals(plans)
    out.append(
        f"\n{t['layers']} layers quantized; weights: {t['quantized_weight_params']:,} params at "
        f"{t['avg_weight_bits']:.2f} bits on average = {t['weight_bytes'] / 2**20:.2f} MiB "
        f"(float32: {t['float_bytes'] / 2**20:.2f} MiB)"
    )
    return "\n".join(out)


def format_attention_table(
    plans: Mapping[str, AttentionPlan], *, all_modules: Mapping[str, str] | None = None
) -> str:
    """Attention modules an ``attention:`` rule selects: name, type, q/k/v bits, probabilities, rule.

    ``all_modules`` (name -> type) adds the attention modules (those calling SDPA) left float.
    """
    rows = [
        (
            p.name,
            p.type_name,
            _bits(p.bits, False),
            f"{p.probs} u{p.bits}" if p.bits else "float",
            p.matched_by,
        )
        for p in plans.values()
    ]
    for name, tname in (all_modules or {}).items():
        if name not in plans:
            rows.append((name, tname, "float", "float", "(no rule)"))
    if not rows:
        return "attention: no rule (q.k^T and attn.v MatMuls stay float)"
    n = sum(p.quantized for p in plans.values())
    out = _fixed_width(("attention module", "type", "q/k/v bits", "probs", "rule"), rows)
    out.append(f"\n{n} attention modules quantized ({2 * n} activation x activation MatMuls, uint8 inputs)")
    return "\n".join(out)
