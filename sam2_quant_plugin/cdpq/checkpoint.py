"""Resumable search state: JSON progress, the quantizer state after each accepted bit drop, and after each
training round what that round changed: the trained parameters (those with ``requires_grad``, i.e. the
``target_roots``), plus the optimizer state while another round is to come. The rest of the student is
the teacher's copy, which resume rebuilds. Resuming reloads these and continues from the last accepted step.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.atomic import atomic_write, atomic_write_json

log = logging.getLogger(__name__)
STATE, STUDENT, QUANT = "search_state.json", "student.pt", "quantizers.pt"


@dataclass
class SearchState:
    phase: str = "train"  # train | reduce | done
    rounds_done: int = 0
    passes_done: int = 0
    threshold: float = 0.0
    attempts: int = 0
    order: list[str] = field(default_factory=list)
    pos: int = 0
    ref_loss: float = float("nan")
    accepted_in_pass: int = 0
    min_rise: float = float("inf")  # smallest rejected rise of the current pass
    history: dict[str, list[float]] = field(default_factory=dict)
    train_curve: list[float] = field(default_factory=list)
    stop_reason: str = ""
    search_seconds: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchState:
        return cls(**d)


def _quant_state(student: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in student.state_dict().items() if "fake_quant" in k}


def _trained_params(student: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training moves, less the quantizers' (those are in the quantizer file)."""
    return {
        n: p.detach().clone()
        for n, p in student.named_parameters()
        if p.requires_grad and "fake_quant" not in n
    }


def save(
    run_dir: Path,
    student: nn.Module,
    state: SearchState,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    full: bool = False,
) -> None:
    """Write the checkpoint; ``full`` also writes the trained parameters and the ``optimizer`` state (pass
    None when no training round follows: Adam's moments are then never read again).
    """
    if full:
        opt_state = optimizer.state_dict() if optimizer is not None else None
        blob = {"params": _trained_params(student), "optimizer": opt_state}
        atomic_write(run_dir / STUDENT, lambda p: torch.save(blob, p), overwrite=True)
    quant = _quant_state(student)
    atomic_write(run_dir / QUANT, lambda p: torch.save(quant, p), overwrite=True)
    atomic_write_json(run_dir / STATE, asdict(state), overwrite=True)


def _load_params(student: nn.Module, blob: dict[str, Any]) -> None:
    if "student" in blob:  # run folders written before the parameters-only format: a full state dict
        student.load_state_dict(blob["student"])
        return
    params = dict(student.named_parameters())
    unknown = [n for n in blob["params"] if n not in params]
    if unknown:
        raise RuntimeError(
            f"checkpoint holds {len(unknown)} parameters the student lacks, e.g. {unknown[:3]}: it was "
            "written for another model or target_roots"
        )
    with torch.no_grad():
        for n, v in blob["params"].items():
            params[n].copy_(v)


def load(
    run_dir: Path, student: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> SearchState | None:
    """Restore the student (and optimizer) from ``run_dir``; None when there is no checkpoint yet."""
    if not (run_dir / STATE).exists():
        return None
    state = SearchState.from_dict(json.loads((run_dir / STATE).read_text()))
    if (run_dir / STUDENT).exists():
        blob = torch.load(run_dir / STUDENT, map_location="cpu", weights_only=True)
        _load_params(student, blob)
        if optimizer is not None and blob.get("optimizer"):
            optimizer.load_state_dict(blob["optimizer"])
    quant = torch.load(run_dir / QUANT, map_location="cpu", weights_only=True)
    _missing, unexpected = student.load_state_dict(quant, strict=False)
    if unexpected:
        raise RuntimeError(
            f"checkpoint holds {len(unexpected)} unknown quantizer keys, e.g. {unexpected[:3]}"
        )
    log.info(
        "resumed at phase %r: %d attempts, %d passes, %d rounds done",
        state.phase,
        state.attempts,
        state.passes_done,
        state.rounds_done,
    )
    return state
