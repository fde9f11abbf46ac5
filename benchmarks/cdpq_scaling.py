"""Search cost against the number of candidate layers: the same CDPQ search over the first k Hiera blocks.

    python benchmarks/cdpq_scaling.py --blocks 1 3 6 9 12 --image-size 128

Every run searches the whole tiny encoder's forward (so one attempt costs the same at every k) but
lowers only the Linear layers of blocks 0..k-1, with the same ladder, threshold and budget. The search is
linear in the layer count when attempts per layer stay flat as k grows; seconds follow attempts.
Writes results.json, results.md and scaling.png to a fresh run folder.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from sam2_quant_plugin.cdpq.config import ORDERS, CDPQConfig
from sam2_quant_plugin.cdpq.run import run_cdpq
from sam2_quant_plugin.cdpq.session import load_batches
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.models import model_info
from sam2_quant_plugin.sam2.build import build_sam2_model

log = logging.getLogger("benchmarks.cdpq_scaling")


def block_roots(k: int) -> tuple[str, ...]:
    """Module prefixes of the first ``k`` Hiera blocks of the image encoder."""
    return tuple(f"image_encoder.trunk.blocks.{i}" for i in range(k))


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a x + b`` and its R^2 (1.0 for a perfect line)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    b = my - a * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a * x + b)) ** 2 for x, y in zip(xs, ys))
    return a, b, (1.0 - ss_res / ss_tot) if ss_tot else 1.0


def run_scaling(args: argparse.Namespace) -> dict[str, Any]:
    out = new_run_dir(args.out, "cdpq-scaling")
    teacher = build_sam2_model(args.config, args.checkpoint, image_size=args.image_size, seed=args.seed)
    rows = []
    for k in args.blocks:
        cfg = CDPQConfig(
            name=f"blocks{k}",
            teacher_checkpoint=args.checkpoint,
            image_size=args.image_size,
            seed=args.seed,
            rounds=0,
            ladder=tuple(args.ladder),
            target_roots=block_roots(k),
            target_avg_bits=args.target_bits,
            impact_threshold=args.impact_threshold,
            order_by=args.order_by,
        )
        t0 = time.perf_counter()
        summary = run_cdpq(cfg, out, teacher=teacher, batches=load_batches(cfg), progress=False)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "blocks": k,
                "layers": summary["layers"],
                "attempts": summary["attempts"],
                "attempts_per_layer": summary["attempts"] / summary["layers"],
                "search_seconds": summary["search_seconds"],
                "seconds_per_attempt": summary["seconds_per_attempt"],
                "wall_seconds": seconds,
                "avg_weight_bits": summary["size"]["avg_weight_bits"],
            }
        )
        log.info(
            "%d blocks: %d layers, %d attempts, %.1f s", k, rows[-1]["layers"], rows[-1]["attempts"], seconds
        )
    layers = [float(r["layers"]) for r in rows]
    fits = {key: fit_line(layers, [float(r[key]) for r in rows]) for key in ("attempts", "search_seconds")}
    result = {
        "weights": model_info(teacher).weights,
        "config": args.config,
        "image_size": args.image_size,
        "ladder": list(args.ladder),
        "order_by": args.order_by,
        "target_avg_bits": args.target_bits,
        "rows": rows,
        "fits": {k: {"slope": a, "intercept": b, "r2": r2} for k, (a, b, r2) in fits.items()},
    }
    write_results(out / "results.json", result, out / "results.md", markdown(result))
    plot(result, out / "scaling.png")
    result["out"] = str(out)
    return result


def _secs(r: dict[str, Any]) -> list[str]:
    return [f"{r['search_seconds']:.1f}", f"{r['seconds_per_attempt'] or 0:.3f}"]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# CDPQ search cost vs layer count ({result['config']}, {result['image_size']} px, "
        f"weights: {result['weights']})",
        "",
        f"ladder {result['ladder']}, order by {result['order_by']}, budget {result['target_avg_bits']} bits",
        "",
        *md_table(
            ("blocks", "layers", "attempts", "attempts / layer", "search s", "s / attempt"),
            [
                (r["blocks"], r["layers"], r["attempts"], f"{r['attempts_per_layer']:.2f}", *_secs(r))
                for r in result["rows"]
            ],
        ),
        "",
    ]
    for key, f in result["fits"].items():
        lines.append(f"- {key} = {f['slope']:.3f} x layers + {f['intercept']:.2f} (R^2 {f['r2']:.3f})")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    xs = [r["layers"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for a, key, label in ((ax[0], "attempts", "attempts"), (ax[1], "search_seconds", "search seconds")):
        a.plot(xs, [r[key] for r in rows], "o-")
        fit = result["fits"][key]
        a.plot(xs, [fit["slope"] * x + fit["intercept"] for x in xs], "--", color="grey")
        a.set_xlabel("candidate layers")
        a.set_ylabel(label)
        a.set_title(f"{label}: R^2 {fit['r2']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/cdpq_scaling.py", description=__doc__)
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--checkpoint", default=None, help="SAM 2 checkpoint; without it: seeded random init")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 3, 6, 9, 12])
    p.add_argument("--ladder", type=int, nargs="+", default=[8, 4, 2])
    p.add_argument("--target-bits", type=float, default=4.0)
    p.add_argument("--impact-threshold", type=float, default=0.002)
    p.add_argument("--order-by", choices=ORDERS, default="confidence")
    p.add_argument("--out", default="runs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse, run, print the Markdown table and the results folder (logging to stderr)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)
    result = run_scaling(build_parser().parse_args(argv))
    print(markdown(result) + f"\nresults: {result['out']}")  # noqa: T201 (a benchmark prints its table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
