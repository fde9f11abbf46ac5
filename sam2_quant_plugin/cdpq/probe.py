"""Probe ordering: measure each candidate's loss rise when dropped alone, rank by rise per byte saved.

The confidence heuristics rank layers by their distillation-loss history, which says how well a layer is
matched, not what lowering it costs or saves. Under a size budget the question is "which drop buys the
most bytes for the least loss", and a probe answers it directly: drop one rung, score the validation
batch, roll back. One forward per candidate per pass, so the search stays linear in the layer count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..numerics import storage_bits
from .artifacts import append_jsonl
from .mirror import EvalMirror
from .session import Session
from .student import next_rung, weight_quantizers

log = logging.getLogger(__name__)
PROBES = "probes.jsonl"


def bytes_saved(numel: int, old: int, new: int, storage: str) -> float:
    """Bytes a drop from ``old`` to ``new`` bits saves on ``numel`` weights, stored the ``storage`` way."""
    return numel * (storage_bits(old, storage) - storage_bits(new, storage)) / 8


def probe_order(
    s: Session,
    candidates: Sequence[str],
    ref_loss: float,
    mirror: EvalMirror,
    *,
    pass_no: int = 0,
    run_dir: Path | None = None,
) -> list[tuple[str, float]]:
    """Candidates with their score (validation-loss rise per MB saved), ascending.

    Sizes count as ``cfg.storage`` says when the budget is in bytes, else at the nominal width. A drop
    that saves nothing (e.g. 6 -> 5 bits, both int8 in ONNX) ranks last.
    """
    cfg = s.cfg
    storage = cfg.storage if cfg.target_bytes is not None else "packed"
    fqs = weight_quantizers(s.student)
    scores: dict[str, float] = {}
    for layer in candidates:
        old = fqs[layer].bits
        new = next_rung(old, cfg.ladder)
        if new is None:
            continue
        saved = bytes_saved(s.student.get_submodule(layer).weight.numel(), old, new, storage)
        loss, undo = mirror.trial(layer, new)
        undo()
        rise = loss - ref_loss
        scores[layer] = rise / (saved / 1e6) if saved > 0 else float("inf")
        if run_dir is not None:
            record = {"pass": pass_no, "layer": layer, "from_bits": old, "bits": new, "rise": rise}
            append_jsonl(run_dir / PROBES, {**record, "bytes_saved": saved, "score": scores[layer]})
    log.info("probed %d candidates (one forward each)", len(scores))
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))
