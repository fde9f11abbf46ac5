"""``run_cdpq``: one CDPQ run in ``runs/<timestamp>_<name>/`` (config.json, train.log, attempts.jsonl,
recipe.yaml, package.pt, summary.json, plots), resumable from its last accepted step.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..api import current_recipe
from ..errors import ConfigError
from ..io.atomic import atomic_write_json, new_run_dir
from ..recipe.io import save_recipe
from . import ddp
from .artifacts import (
    attach_log_file,
    detach_log_file,
    plot_bits,
    plot_confidence,
    plot_losses,
    read_jsonl,
    truncate_jsonl,
)
from .budget import check_budget_feasible
from .checkpoint import STATE, check_resumable, read_state
from .config import CDPQConfig
from .differentiable import run_differentiable
from .package import build_package, package_nbytes, save_package
from .search import ATTEMPTS, CONFIDENCE, run_search
from .sensitivity import cached_sensitivity, compute_sensitivity, importance_from
from .session import Session, build_session
from .student import REFIT_GRID, bits_map, size_report

log = logging.getLogger(__name__)


def _run_dir(cfg: CDPQConfig, out: str | Path, resume: str | Path | None) -> Path:
    path = [str(resume) if resume else (str(new_run_dir(out, cfg.name)) if ddp.is_main() else "")]
    if ddp.active():
        dist.broadcast_object_list(path, src=0)
    return Path(path[0])


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` holds the state saved so far (``--resume`` continues from it)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def load_config(run_dir: str | Path) -> CDPQConfig:
    """The saved config of a run folder; :class:`ConfigError` when the folder is not a CDPQ run."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        what = "does not exist" if not Path(run_dir).exists() else "is not a CDPQ run folder (no config.json)"
        raise ConfigError(
            f"--resume {run_dir} {what}. Fix: pass the run folder a cdpq run printed "
            "(runs/<timestamp>_<name>), or start a new run without --resume."
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read ({e}). Fix: start a new run without --resume.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object. Fix: start a new run without --resume.")
    return CDPQConfig.from_dict(data)


def _remove_if_unstarted(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but its config and log (the run failed before any step)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"config.json", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("removed %s: the run failed before its first step", run_dir)


def _sensitivity(s: Session, run_dir: Path, progress: bool) -> dict[str, float] | None:
    metric = s.cfg.sensitivity
    if not metric:
        return None

    def compute() -> dict[str, float]:
        return compute_sensitivity(
            s.student, s.cache, s.task, s.val, s.cfg.weights, metric, seed=s.cfg.seed, progress=progress
        )

    return cached_sensitivity(run_dir / f"sensitivity_{metric}.json", metric, compute)


def run_cdpq(
    cfg: CDPQConfig | None = None,
    out: str | Path = "runs",
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    **session_kw: Any,
) -> dict[str, Any]:
    """Run CDPQ (``cfg.mode`` 'search' or 'differentiable'); ``resume`` continues the run in that folder
    with its saved config. Extra keywords (``task``, ``teacher``, ``student_float``, ``batches``) go to
    :func:`build_session`. Returns the summary (``interrupted`` true when ``max_attempts`` cut it short).
    """
    if resume is not None:
        cfg = load_config(resume) if cfg is None else cfg
    if cfg is None:
        raise ConfigError("run_cdpq needs a CDPQConfig or a run folder to resume. Fix: pass cfg= or resume=")
    run_dir = _run_dir(cfg, out, resume)
    handler = attach_log_file(run_dir) if ddp.is_main() else None
    started = False  # any state written beyond config.json (else a failed new run leaves no folder)
    try:
        t0 = time.perf_counter()
        if ddp.is_main() and not (run_dir / "config.json").exists():
            atomic_write_json(run_dir / "config.json", cfg.to_dict())
        log.info("CDPQ run folder %s (mode %s)", run_dir, cfg.mode)
        if resume is not None and cfg.mode == "search":
            check_resumable(run_dir)  # a damaged checkpoint fails now, before any model is built
        s = build_session(cfg, **session_kw)
        check_budget_feasible(s)  # an impossible budget fails now, not after the whole search
        started = True
        sens = _sensitivity(s, run_dir, progress)
        extra: dict[str, Any] = {}
        if cfg.mode == "search":
            resuming = resume is not None and (run_dir / STATE).exists()
            if resuming and ddp.is_main():
                state_attempts = read_state(run_dir).attempts
                truncate_jsonl(run_dir / ATTEMPTS, state_attempts)
            state = run_search(s, run_dir, resume=resuming, sensitivity=sens, progress=progress)
            if state.phase != "done":
                return {"run_dir": str(run_dir), "interrupted": True, "attempts": state.attempts}
            if cfg.has_budget and state.stop_reason != "budget reached":
                log.warning(
                    "the search stopped (%s) before meeting the budget; the recipe is larger than asked. "
                    "Fix: a ladder with lower rungs, more max_passes, or a larger budget",
                    state.stop_reason,
                )
            extra = {
                "stop_reason": state.stop_reason,
                "passes": state.passes_done,
                "rounds": state.rounds_done,
            }
            curve, seconds = state.train_curve, state.search_seconds
        else:
            result = run_differentiable(s, importance_from(sens) if sens else None, progress=progress)
            curve, seconds = result["train_curve"], time.perf_counter() - t0
            extra = {
                "stuck_at_bound": result["stuck"],
                "steps": result["steps"],
                "bit_lr": result["bit_lr"],
                "budget_met": result["budget_met"],
                "projected_to_budget": result["projected"],
            }
        extra["weight_checksum"] = float(sum(p.detach().double().sum() for p in s.student.parameters()))
        if ddp.is_main():
            summary = finalize(s, run_dir, curve, seconds, extra)
        else:
            summary = {"run_dir": str(run_dir), "bits": bits_map(s.student), **extra}
        ddp.barrier()
        return summary
    except KeyboardInterrupt:
        started = True  # keep the folder: --resume continues from it
        raise Interrupted(run_dir) from None
    finally:
        if handler is not None:
            detach_log_file(handler)
        if not started and resume is None and ddp.is_main():
            _remove_if_unstarted(run_dir)


def finalize(
    s: Session, run_dir: Path, curve: list[float], seconds: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """Write recipe.yaml, package.pt, plots and summary.json; returns the summary."""
    cfg = s.cfg
    recipe = current_recipe(s.student, name=f"{cfg.name}-cdpq")
    if cfg.refit_scale:  # the search refits dropped layers by MSE clip search: the recipe must say so too
        mse = {"observer": "mse", "observer_args": {"grid": REFIT_GRID}}
        rules = tuple(replace(r, weight=replace(r.weight, **mse)) if r.weight else r for r in recipe.rules)
        recipe = replace(recipe, rules=rules)
    save_recipe(recipe, run_dir / "recipe.yaml", overwrite=True)
    package = build_package(s.student, {"config": cfg.student_config, "image_size": cfg.image_size})
    save_package(package, run_dir / "package.pt")
    bits = bits_map(s.student)
    attempts = read_jsonl(run_dir / ATTEMPTS)
    plot_bits(bits, run_dir / "bits_per_layer.png", title=f"{cfg.name}: weight bits per layer")
    plot_losses(curve, attempts, run_dir / "loss_curves.png")
    confidence = read_jsonl(run_dir / CONFIDENCE) if (run_dir / CONFIDENCE).exists() else []
    plot_confidence(confidence, bits, run_dir / "confidence.png")
    n_try = len(attempts)
    summary = {
        "run_dir": str(run_dir),
        "interrupted": False,
        "mode": cfg.mode,
        "confidence_heuristic": cfg.confidence,  # what scored the layers (confidence.jsonl, confidence.png)
        "order_by": cfg.order_by,  # what ordered the candidates: that heuristic, or probes
        "confidence_rows": len(confidence),
        "layers": len(bits),
        "bits": bits,
        "bit_histogram": {
            str(b): sum(1 for v in bits.values() if v == b) for b in sorted(set(bits.values()))
        },
        "size": size_report(s.student, cfg.target_roots),
        "package_bytes": package_nbytes(package),
        "attempts": n_try,
        "accepted": sum(1 for a in attempts if a["accepted"]),
        "search_seconds": seconds,
        "seconds_per_attempt": (sum(a["seconds"] for a in attempts) / n_try) if n_try else None,
        "train_curve": curve,
        **extra,
    }
    atomic_write_json(run_dir / "summary.json", summary, overwrite=True)
    log.info(
        "CDPQ done: %d layers, avg %.3f bits, %.2f MB (%s); outputs in %s",
        len(bits),
        summary["size"]["avg_weight_bits"],
        summary["size"]["total_mb"],
        summary["bit_histogram"],
        run_dir,
    )
    return summary
