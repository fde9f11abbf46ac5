"""Resumable search state: JSON progress, the quantizer state after each accepted bit drop, and after each
training round what that round changed: the trained parameters (those with ``requires_grad``, i.e. the
``target_roots``), plus the optimizer state while another round is to come. The rest of the student is
the teacher's copy, which resume rebuilds. Resuming reloads these and continues from the last accepted step.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io.atomic import atomic_write, atomic_write_json
from ..io.torch_files import load_torch_file

log = logging.getLogger(__name__)
STATE, STUDENT, QUANT = "search_state.json", "student.pt", "quantizers.pt"
RESTART = "Fix: start a fresh run without --resume, or restore the file from a backup."


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


def _kind_ok(value: Any, default: Any) -> bool:
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def read_state(run_dir: Path) -> SearchState:
    """The run's ``search_state.json``, checked (every field present, of its type); a damaged file raises
    :class:`CheckpointError` naming it and the fix."""
    path = run_dir / STATE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}). {RESTART}") from None
    names = [f.name for f in fields(SearchState)]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object (got {data!r:.40}). {RESTART}")
    defaults = SearchState()
    problems = [f"unknown key {k!r}" for k in data if k not in names]
    problems += [f"missing key {k!r}" for k in names if k not in data]
    problems += [
        f"{k!r} is {data[k]!r:.40}"
        for k in names
        if k in data and not _kind_ok(data[k], getattr(defaults, k))
    ]
    if problems:
        raise CheckpointError(f"{path} is damaged: {'; '.join(problems[:4])}. {RESTART}")
    return SearchState.from_dict(data)


def _torch_load(path: Path) -> Any:
    return load_torch_file(path, fix=RESTART.removeprefix("Fix: "))


def check_resumable(run_dir: Path) -> None:
    """Read every checkpoint file of ``run_dir`` once, before a resumed run builds anything."""
    if not (run_dir / STATE).exists():
        return
    read_state(run_dir)
    for name in (STUDENT, QUANT):
        if name == QUANT or (run_dir / name).exists():
            blob = _torch_load(run_dir / name)
            if not isinstance(blob, dict):
                raise CheckpointError(f"{run_dir / name} does not hold a state dict. {RESTART}")


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
        raise CheckpointError(
            f"checkpoint holds {len(unknown)} parameters the student lacks, e.g. {unknown[:3]}: it was "
            f"written for another model or target_roots. {RESTART}"
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
    state = read_state(run_dir)
    if (run_dir / STUDENT).exists():
        blob = _torch_load(run_dir / STUDENT)
        _load_params(student, blob)
        if optimizer is not None and blob.get("optimizer"):
            optimizer.load_state_dict(blob["optimizer"])
    quant = _torch_load(run_dir / QUANT)
    _missing, unexpected = student.load_state_dict(quant, strict=False)
    if unexpected:
        raise CheckpointError(
            f"checkpoint holds {len(unexpected)} unknown quantizer keys, e.g. {unexpected[:3]}: it was "
            f"written for another model or recipe. {RESTART}"
        )
    log.info(
        "resumed at phase %r: %d attempts, %d passes, %d rounds done",
        state.phase,
        state.attempts,
        state.passes_done,
        state.rounds_done,
    )
    return state
