"""The CDPQ loop: KD training rounds, per-layer loss history, confidence-ordered candidates, and
progressive bit reduction along a ladder with accept-or-roll-back on a validation batch.

Cost: one validation forward per attempt and at most ``len(ladder) - 1`` attempts per layer per pass,
so the search grows linearly with the number of layers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..api import weight_bits_summary
from . import checkpoint, ddp
from .artifacts import append_jsonl
from .budget import budget_met
from .checkpoint import SearchState
from .confidence import confidence_scores, order_candidates
from .mirror import EvalMirror
from .probe import probe_order
from .session import Session
from .student import bits_map, next_rung, weight_quantizers
from .task import TaskModule
from .train import evaluate, kd_epoch, make_optimizer

log = logging.getLogger(__name__)
ATTEMPTS = "attempts.jsonl"
CONFIDENCE = "confidence.jsonl"


def _reducible(s: Session) -> list[str]:
    bits = bits_map(s.student)
    return [n for n in s.candidates if next_rung(bits[n], s.cfg.ladder) is not None]


def _train_round(s: Session, state: SearchState, runner: torch.nn.Module, opt, progress: bool) -> None:
    cfg = s.cfg
    for e in range(cfg.epochs_per_round):
        stats = kd_epoch(
            runner,
            s.student,
            s.cache,
            s.train,
            opt,
            cfg.weights,
            history=state.history,
            grad_clip=cfg.grad_clip,
            desc=f"round {state.rounds_done + 1} epoch {e + 1}",
            progress=progress,
        )
        state.train_curve.append(stats["loss"])
        log.info("round %d epoch %d: %s", state.rounds_done + 1, e + 1, _fmt(stats))
    state.history = ddp.mean_history(state.history)
    state.rounds_done += 1


def _fmt(d: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in d.items())


def _start_pass(
    s: Session,
    state: SearchState,
    sensitivity: dict[str, float] | None,
    mirror: Callable[[], EvalMirror],
    run_dir: Path | None,
) -> None:
    ref, per_layer = evaluate(s.student, s.cache, s.task, s.val, s.cfg.weights, layers=bool(s.cache.layers))
    for k, v in per_layer.items():
        state.history.setdefault(k, []).append(v)
    if s.cfg.order_by == "probe":
        out = run_dir if ddp.is_main() else None
        ranked = probe_order(s, _reducible(s), ref, mirror(), pass_no=state.passes_done + 1, run_dir=out)
    else:
        ranked = order_candidates(
            state.history, _reducible(s), s.cfg.confidence, sensitivity, s.cfg.sensitivity_weight
        )
    order = ddp.from_main([n for n, _ in ranked])  # every rank walks the same order
    if run_dir is not None and ddp.is_main():
        _record_confidence(s, state, order, run_dir)
    state.order, state.pos, state.ref_loss, state.accepted_in_pass = order, 0, ref, 0
    state.min_rise = float("inf")
    state.phase = "reduce"
    log.info(
        "pass %d: %d candidates, reference loss %.5g, threshold %.4g",
        state.passes_done + 1,
        len(state.order),
        ref,
        state.threshold,
    )


def _record_confidence(s: Session, state: SearchState, order: list[str], run_dir: Path) -> None:
    """One ``confidence.jsonl`` row per candidate and pass: its score under the configured heuristic
    (recorded whatever ``order_by`` is), its loss history, bits and place in this pass's order."""
    scores = confidence_scores(state.history, order, s.cfg.confidence)
    bits = {n: q.bits for n, q in weight_quantizers(s.student).items()}
    for rank, name in enumerate(order):
        hist = state.history.get(name, [])
        append_jsonl(
            run_dir / CONFIDENCE,
            {
                "pass": state.passes_done + 1,
                "layer": name,
                "heuristic": s.cfg.confidence,
                "order_by": s.cfg.order_by,
                "confidence": scores[name],
                "rank": rank,
                "bits": bits.get(name),
                "history": hist[-8:],
            },
        )


def _attempt(s: Session, state: SearchState, layer: str, run_dir: Path | None, mirror: EvalMirror) -> bool:
    old = weight_quantizers(s.student)[layer].bits
    new = next_rung(old, s.cfg.ladder)
    if new is None:
        return False
    t0 = time.perf_counter()
    loss, undo = mirror.trial(layer, new)
    rise = loss - state.ref_loss
    accepted = ddp.agree(rise <= state.threshold)
    if not accepted:
        undo()
        state.min_rise = min(state.min_rise, rise)
    state.attempts += 1
    summary = weight_bits_summary(s.student)
    record = {
        "attempt": state.attempts,
        "pass": state.passes_done + 1,
        "layer": layer,
        "from_bits": old,
        "bits": new,
        "loss": loss,
        "ref_loss": state.ref_loss,
        "rise": rise,
        "threshold": state.threshold,
        "accepted": accepted,
        "avg_bits": summary["avg_weight_bits"],
        "seconds": time.perf_counter() - t0,
    }
    if run_dir is not None and ddp.is_main():
        append_jsonl(run_dir / ATTEMPTS, record)
    log.info(
        "attempt %d %s %d->%d loss %.5g rise %+.4g %s",
        state.attempts,
        layer,
        old,
        new,
        loss,
        rise,
        "ACCEPT" if accepted else "reject",
    )
    if accepted:
        state.ref_loss = loss
        state.accepted_in_pass += 1
    return accepted


def _end_pass(s: Session, state: SearchState) -> None:
    state.passes_done += 1
    cfg = s.cfg
    log.info("pass %d done: %d accepted", state.passes_done, state.accepted_in_pass)
    if budget_met(s):
        state.stop_reason = "budget reached"
    elif not _reducible(s):
        state.stop_reason = "every candidate at the ladder's bottom"
    elif state.passes_done >= cfg.max_passes:
        state.stop_reason = f"max_passes={cfg.max_passes}"
    elif state.accepted_in_pass == 0 and not s.cfg.has_budget and state.rounds_done >= cfg.rounds:
        state.stop_reason = "no layer accepted a lower width"
    if state.stop_reason:
        state.phase = "done"
        return
    if state.accepted_in_pass == 0 and s.cfg.has_budget:
        # grow the threshold, at least to the cheapest rejected drop, so every such pass makes progress
        state.threshold = max(state.threshold * cfg.threshold_growth, state.min_rise)
        log.info("budget not met and nothing accepted: threshold -> %.4g", state.threshold)
    state.phase = "train" if state.rounds_done < cfg.rounds else "reduce-next"


def run_search(
    s: Session,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    sensitivity: dict[str, float] | None = None,
    progress: bool = True,
) -> SearchState:
    """Run (or, with ``resume``, continue) the search; returns the final state (phase 'done'), or the
    state at ``max_attempts`` (phase not 'done') when the run was cut short on purpose.
    """
    cfg = s.cfg
    runner = ddp.wrap(TaskModule(s.student, s.task))
    opt = make_optimizer(s.student, cfg.lr, cfg.scale_lr)
    state = checkpoint.load(run_dir, s.student, opt) if resume and run_dir is not None else None
    # Reduce first, then distil: KD on the untouched 8-bit student has nothing to fix (its loss is ~1e-4)
    # and Adam's first steps only overshoot; after a reduction pass it recovers the lost accuracy.
    state = state or SearchState(threshold=cfg.impact_threshold, phase="reduce-next")
    t_start = time.perf_counter() - state.search_seconds
    bar = tqdm(desc="cdpq attempts", initial=state.attempts, disable=not progress, unit="try")

    def save(full: bool = False) -> None:
        state.search_seconds = time.perf_counter() - t_start
        if run_dir is not None and ddp.is_main():
            more_training = state.rounds_done < cfg.rounds  # else Adam's moments are never read again
            checkpoint.save(run_dir, s.student, state, opt if more_training else None, full=full)

    mirror: EvalMirror | None = None

    def get_mirror() -> EvalMirror:
        nonlocal mirror
        if mirror is None:
            mirror = EvalMirror(s)
        return mirror

    while state.phase != "done":
        if state.phase == "train":
            _train_round(s, state, runner, opt, progress)
            mirror = None  # weights changed
            _start_pass(s, state, sensitivity, get_mirror, run_dir)
            save(full=True)
        elif state.phase == "reduce-next":
            _start_pass(s, state, sensitivity, get_mirror, run_dir)
            save()
        while state.phase == "reduce" and state.pos < len(state.order):
            if budget_met(s):
                break
            if cfg.max_attempts is not None and state.attempts >= cfg.max_attempts:
                log.warning("stopping after %d attempts (max_attempts); resume to continue", state.attempts)
                bar.close()
                return state
            layer = state.order[state.pos]
            state.pos += 1
            accepted = _attempt(s, state, layer, run_dir, get_mirror())
            bar.update(1)
            if accepted:
                save()
        _end_pass(s, state)
        save()
    bar.close()
    log.info("search done (%s) after %d attempts: %s", state.stop_reason, state.attempts, _summary(s))
    return state


def _summary(s: Session) -> str:
    summary = weight_bits_summary(s.student, storage=s.cfg.storage)
    mb = summary["weight_bytes"] / 1e6
    bits = summary["avg_weight_bits"]
    return f"avg weight bits {bits:.3f}, {mb:.2f} MB of weights ({s.cfg.storage} storage)"
