"""Run-folder outputs: train.log handler, attempts JSONL, plots (bits per layer, loss curves), summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def attach_log_file(run_dir: Path) -> logging.Handler:
    """Mirror the package's log records into ``run_dir/train.log`` (append; resume keeps the old lines)."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("sam2_quant_plugin")
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger("sam2_quant_plugin").removeHandler(handler)
    handler.close()


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_jsonl(path: Path, n: int) -> None:
    """Keep the first ``n`` records (attempts made after the last checkpoint are redone on resume)."""
    rows = read_jsonl(path)[:n]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _short(name: str) -> str:
    return name.replace("image_encoder.", "").replace("trunk.blocks.", "b").replace("mlp.layers.", "mlp")


def plot_bits(bits: dict[str, int], path: Path, title: str = "weight bits per layer") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(bits)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(names)), 3.5))
    ax.bar(range(len(names)), [bits[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), [_short(n) for n in names], rotation=90, fontsize=6)
    ax.set_ylabel("bits")
    ax.set_ylim(0, 8.5)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_losses(train: Sequence[float], attempts: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training loss per epoch (left) and validation loss per attempt, accepted in green (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(range(1, len(train) + 1), train, marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("KD loss")
    a.set_title("training")
    xs = range(len(attempts))
    b.scatter(
        xs,
        [r["loss"] for r in attempts],
        c=["tab:green" if r["accepted"] else "tab:red" for r in attempts],
        s=10,
    )
    b.set_xlabel("attempt")
    b.set_ylabel("validation loss")
    b.set_title("bit-reduction attempts (green: accepted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confidence(records: Sequence[dict[str, Any]], bits: dict[str, int], path: Path) -> Path:
    """Per layer: the confidence score of every pass (lines, left axis) beside the final bits (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(bits)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(names)), 3.8))
    ax.bar(range(len(names)), [bits[n] for n in names], color="tab:blue", alpha=0.35, label="final bits")
    ax.set_ylabel("bits")
    ax.set_ylim(0, 8.5)
    ax.set_xticks(range(len(names)), [_short(n) for n in names], rotation=90, fontsize=6)
    twin = ax.twinx()
    passes = sorted({r["pass"] for r in records})
    for p in passes:
        last = {r["layer"]: r["confidence"] for r in records if r["pass"] == p}  # a resumed pass: last wins
        xs = [i for i, n in enumerate(names) if n in last]
        twin.plot(xs, [last[names[i]] for i in xs], marker=".", lw=0.8, label=f"pass {p}")
    heuristic = records[0]["heuristic"] if records else "?"
    twin.set_ylabel(f"confidence ({heuristic}; lower: tried first)")
    if passes:
        twin.legend(fontsize=6, loc="upper right")
    ax.set_title("CDPQ: per-layer confidence by pass, and the bits it ended with")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
