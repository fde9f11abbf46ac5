"""Is a CDPQ size budget reachable at all? Checked once the student exists, before the search starts."""

from __future__ import annotations

from ..api import weight_bits_summary
from ..errors import ConfigError
from ..numerics import storage_bits
from .session import Session
from .student import bits_map


def budget_met(s: Session) -> bool:
    """Whether the student's rounded bits meet the size budget (average bits, or weight bytes counted as
    ``cfg.storage`` says)."""
    cfg, summary = s.cfg, weight_bits_summary(s.student, storage=s.cfg.storage)
    if cfg.target_avg_bits is not None and summary["avg_weight_bits"] <= cfg.target_avg_bits + 1e-9:
        return True
    return cfg.target_bytes is not None and summary["weight_bytes"] <= cfg.target_bytes


def check_budget_feasible(s: Session) -> None:
    """Raise :class:`ConfigError` when even all candidate layers at the lowest rung miss the budget."""
    cfg = s.cfg
    if not cfg.has_budget:
        return
    low = min(cfg.ladder)
    bits = bits_map(s.student)
    candidates = set(s.candidates)
    n = {name: float(s.student.get_submodule(name).weight.numel()) for name in bits}
    floor_bits = {name: (low if name in candidates else b) for name, b in bits.items()}
    total = sum(n.values()) or 1.0
    floor_avg = sum(floor_bits[k] * n[k] for k in n) / total
    floor_bytes = sum(storage_bits(floor_bits[k], cfg.storage) * n[k] for k in n) / 8
    if cfg.target_avg_bits is not None and cfg.target_avg_bits < floor_avg - 1e-9:
        raise ConfigError(
            f"--target-bits {cfg.target_avg_bits} cannot be met: with every layer at {low} bits (the lowest "
            f"rung of ladder {cfg.ladder}) the average is {floor_avg:.3f}. Fix: ask for at least "
            f"{floor_avg:.3f} bits, or add a lower rung to --ladder."
        )
    if cfg.target_bytes is not None and cfg.target_bytes < floor_bytes:
        raise ConfigError(
            f"--target-mb {cfg.target_bytes / 1e6:g} cannot be met: with every layer at {low} bits the "
            f"quantized weights take {floor_bytes / 1e6:.3f} MB (storage {cfg.storage!r}). Fix: ask for at "
            f"least {floor_bytes / 1e6:.3f} MB, add a lower rung to --ladder, or use --storage packed."
        )
