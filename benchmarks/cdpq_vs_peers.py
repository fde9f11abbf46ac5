"""CDPQ benchmark: the searched recipe vs uniform bits at the same average weight bits, the learnable-bit
mode and the peers' quantizers beside them; mask IoU against the float teacher on held-out real frames.

    python benchmarks/cdpq_vs_peers.py --image-size 128 --target-bits 4.0

Distils on the bundled photos and measures on the bundled video frames (held out) and the photos.
Every CDPQ / uniform model is evaluated as a vanilla SAM 2 rebuilt from its quantized package (the
deliverable path). Peer rows (``--peers``, names of ``sam2-quant eval``'s method registry, default the
NNCF weight-only quantizers) are measured by this run on the same teacher and images: their encoder ONNX
file runs in onnxruntime; their size is that file. Nothing in the table comes from another run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

import sam2_quant_plugin as sq
from sam2_quant_plugin.cdpq.config import ORDERS, CDPQConfig
from sam2_quant_plugin.cdpq.package import build_package, package_to_checkpoint
from sam2_quant_plugin.cdpq.run import run_cdpq
from sam2_quant_plugin.cdpq.session import load_batches
from sam2_quant_plugin.cdpq.student import prepare_student, set_layer_bits, size_report, weight_quantizers
from sam2_quant_plugin.eval.baselines.base import BuildContext, Method
from sam2_quant_plugin.eval.baselines.registry import make_methods
from sam2_quant_plugin.eval.harness import Reference, Student, build_reference, score_student
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.models import model_info
from sam2_quant_plugin.numerics import STORAGE_MODES
from sam2_quant_plugin.sam2.build import build_sam2_model
from sam2_quant_plugin.sam2.preprocess import bundled_images, bundled_video_frames, load_image
from sam2_quant_plugin.sam2.task import sam2_task

log = logging.getLogger("benchmarks.cdpq_vs_peers")
#: registry names of ``sam2-quant eval`` (sam2_quant_plugin.eval.baselines.registry) measured as peer rows
DEFAULT_PEERS = ("nncf-wc-int4-g32", "nncf-wc-int4-int8-mixed-r80", "nncf-wc-int8")


def _fidelity(refs: dict[str, Reference], teacher: nn.Module, model: Student) -> dict[str, float]:
    """Point-prompt mask IoU of ``model`` on each image set (teacher outputs computed once, in ``refs``)."""
    scores = {k: score_student(ref, model, teacher, progress=False) for k, ref in refs.items()}
    return {k: score["points"]["mask_iou"] for k, score in scores.items()}


def _vanilla(args: argparse.Namespace, package: dict[str, Any] | Path, path: Path) -> nn.Module:
    ckpt = package_to_checkpoint(package, path)
    return build_sam2_model(args.config, ckpt, image_size=args.image_size)


def uniform(args: argparse.Namespace, teacher: nn.Module, batches: list, bits: int, refit: bool) -> nn.Module:
    student = prepare_student(
        teacher, batches, sam2_task, target_roots=("image_encoder",), group_size=args.group_size
    )
    for name in weight_quantizers(student):
        set_layer_bits(student, name, bits, refit=refit)
    return student


def gptq_afterwards(
    recipe_path: Path, teacher: nn.Module, photos: list, args: argparse.Namespace
) -> nn.Module:
    """The searched recipe with ``rounding: gptq`` on every Linear rule, calibrated on the photos, frozen."""
    recipe = sq.load_recipe(recipe_path)
    linear = {n for n, m in teacher.named_modules() if isinstance(m, nn.Linear)}
    rules = tuple(
        replace(r, weight=replace(r.weight, rounding="gptq"))
        if r.weight is not None and r.match in linear and r.weight.symmetric
        else r
        for r in recipe.rules
    )
    model = sq.prepare_qat(teacher, replace(recipe, rules=rules, name=f"{recipe.name}-gptq"))
    sq.calibrate(model, photos, image_size=args.image_size, progress=False)
    return sq.freeze(model)


def peer_methods(spec: str) -> list[Method]:
    """The ``--peers`` methods (comma list of eval registry names); unknown names fail before any work."""
    return make_methods([n.strip() for n in spec.split(",") if n.strip()])


def peer_rows(
    methods: list[Method],
    teacher: nn.Module,
    refs: dict[str, Reference],
    ctx: BuildContext,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each peer method built (calibrated on ``ctx.calib_images``) and scored by this run.

    Returns the rows by method name and the methods that failed (name -> error); a failed peer is left out
    of the table, never filled in from elsewhere.
    """
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for method in methods:
        try:
            built = method.make_student(ctx)
            rows[method.name] = {
                **_fidelity(refs, teacher, built.model),
                "avg_weight_bits": built.avg_w_bits,
                "file_mb": built.size_bytes / 1e6,
                "size_kind": built.size_kind,
                "runtime": built.runtime,
                "description": method.description,
            }
        except Exception as e:  # a missing optional peer (e.g. nncf) must not lose the measured rows
            log.exception("peer %s failed", method.name)
            failed[method.name] = f"{type(e).__name__}: {e}"
    return rows, failed


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    peers = peer_methods(args.peers)
    out = new_run_dir(args.out, "cdpq-benchmark")
    teacher = build_sam2_model(args.config, args.checkpoint, image_size=args.image_size, seed=args.seed)
    frames = [load_image(p) for p in bundled_video_frames()[: args.eval_frames]]
    images = {"video_frames": frames, "photos": [load_image(p) for p in bundled_images()]}
    refs = {
        k: build_reference(
            teacher, v, image_size=args.image_size, points_per_side=args.points_per_side, progress=False
        )
        for k, v in images.items()
    }
    base = CDPQConfig(
        name="cdpq",
        teacher_checkpoint=args.checkpoint,
        image_size=args.image_size,
        seed=args.seed,
        rounds=args.rounds,
        ladder=tuple(args.ladder),
        target_avg_bits=None if args.target_mb else args.target_bits,
        target_bytes=args.target_mb * 1e6 if args.target_mb else None,
        storage=args.storage,
        group_size=args.group_size,
        impact_threshold=args.impact_threshold,
        sensitivity=args.sensitivity,
        confidence=args.confidence,
        order_by=args.order_by,
        rounding=args.rounding,
    )
    batches = load_batches(base)
    rows: dict[str, dict[str, Any]] = {}

    t0 = time.perf_counter()
    if args.cdpq_run:  # re-evaluate a finished search instead of running it again
        summary = json.loads((Path(args.cdpq_run) / "summary.json").read_text())
        search_s = summary["search_seconds"]
    else:
        summary = run_cdpq(base, out, teacher=teacher, batches=batches, progress=args.progress)
        search_s = time.perf_counter() - t0
    pkg = Path(summary["run_dir"]) / "package.pt"
    model = _vanilla(args, pkg, out / "cdpq_vanilla_checkpoint.pt")
    rows["CDPQ search"] = {
        **_fidelity(refs, teacher, model),
        **summary["size"],
        "bit_histogram": summary["bit_histogram"],
        "seconds": search_s,
        "attempts": summary["attempts"],
        "seconds_per_attempt": summary["seconds_per_attempt"],
        "layers": summary["layers"],
    }
    if args.gptq_after:  # today's two-step path: the RTN search's recipe, GPTQ-rounded afterwards
        t0 = time.perf_counter()
        after = gptq_afterwards(Path(summary["run_dir"]) / "recipe.yaml", teacher, images["photos"], args)
        rows["CDPQ search + GPTQ afterwards"] = {
            "gptq_seconds": time.perf_counter() - t0,  # on top of the search's (its "search s" column)
            **_fidelity(refs, teacher, after),
            **summary["size"],
            "bit_histogram": summary["bit_histogram"],
        }
    bits = round(summary["size"]["avg_weight_bits"]) if args.uniform_bits is None else args.uniform_bits
    for label, refit in ((f"uniform {bits}-bit (MSE clip)", True), (f"uniform {bits}-bit (min-max)", False)):
        student = uniform(args, teacher, batches[0], bits, refit)
        vanilla = _vanilla(args, build_package(student), out / f"uniform{bits}_{int(refit)}.pt")
        rows[label] = {
            **_fidelity(refs, teacher, vanilla),
            **size_report(student),
        }
    if args.learnable:
        diff = CDPQConfig.from_dict({**base.to_dict(), "name": "learnable", "mode": "differentiable"})
        diff.bit_lambda, diff.bit_lr, diff.diff_epochs = args.bit_lambda, args.bit_lr, args.diff_epochs
        t0 = time.perf_counter()
        s2 = run_cdpq(diff, out, teacher=teacher, batches=batches, progress=args.progress)
        model = _vanilla(
            args, Path(s2["run_dir"]) / "package.pt", Path(s2["run_dir"]) / "vanilla_checkpoint.pt"
        )
        rows["learnable bits (differentiable, same budget)"] = {
            **_fidelity(refs, teacher, model),
            **s2["size"],
            "bit_histogram": s2["bit_histogram"],
            "budget_met": s2.get("budget_met"),
            "seconds": time.perf_counter() - t0,
        }
    ctx = BuildContext(teacher, images["photos"], args.image_size, out / "peers", seed=args.seed)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    peer_table, failed = peer_rows(peers, teacher, refs, ctx)
    result = {
        "weights": model_info(teacher).weights,
        "config": args.config,
        "image_size": args.image_size,
        "eval": {k: len(v) for k, v in images.items()},
        "points_per_side": args.points_per_side,
        "cdpq_config": base.to_dict(),
        "rows": rows,
        "peers": peer_table,
        "peers_failed": failed,
    }
    write_results(out / "results.json", result, out / "results.md", markdown(result))
    result["out"] = str(out)
    return result


def _cells(name: str, r: dict[str, Any], seconds: str = "") -> list[str]:
    """A table row: measured rows have both sizes, peer rows only their ONNX file (``file_mb``)."""
    sizes = (
        [f"{r['total_mb']:.2f}", f"{r['onnx_total_mb']:.2f}"]
        if "total_mb" in r
        else ["", f"{r['file_mb']:.2f}"]
    )
    iou = [f"{r['video_frames']:.4f}", f"{r['photos']:.4f}", f"{r['avg_weight_bits']:.3f}"]
    return [name, *iou, *sizes, seconds]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# CDPQ benchmark ({result['config']}, {result['image_size']} px, weights: {result['weights']})",
        "",
        "Mask IoU vs the float teacher (point grid, degenerate teacher masks left out); size: image encoder",
        "= packed quantized weights + fp32 scales (per channel, or per group with --group-size) + float",
        "biases/norms/position embeddings;",
        "ONNX MB: the same with weights as the int4 export stores them (INT4 up to 4 bits, int8 above).",
        "",
    ]
    headers = ("model", "IoU video frames (held out)", "IoU photos", "avg weight bits", "size MB", "ONNX MB")
    rows = [
        _cells(name, r, f"{r['seconds']:.0f}" if "seconds" in r else "") for name, r in result["rows"].items()
    ]
    rows += [_cells(f"{name} (peer, measured here)", r) for name, r in result.get("peers", {}).items()]
    lines += md_table([*headers, "search s"], rows)
    if result.get("peers"):
        lines += [
            "",
            "Peer rows: the eval registry's methods (`sam2-quant eval --methods ...`) built by this run on "
            "the same teacher; ONNX MB is their encoder file, run in onnxruntime inside the float SAM 2.",
        ]
    for name, err in result.get("peers_failed", {}).items():
        lines += ["", f"Peer {name} failed in this run (no row): {err}"]
    cd = result["rows"].get("CDPQ search", {})
    if cd.get("seconds_per_attempt"):
        lines += [
            "",
            f"CDPQ: {cd['attempts']} attempts over {cd['layers']} layers, "
            f"{cd['seconds_per_attempt']:.2f} s per attempt (one validation forward), "
            f"{cd['seconds']:.0f} s in all; bits {cd['bit_histogram']}.",
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/cdpq_vs_peers.py", description=__doc__)
    add_model_arguments(p)
    p.add_argument("--target-bits", type=float, default=4.0, help="CDPQ budget: average weight bits")
    p.add_argument(
        "--target-mb",
        type=float,
        default=None,
        help="CDPQ budget in weight megabytes instead of --target-bits, counted as --storage says",
    )
    p.add_argument("--storage", choices=STORAGE_MODES, default="onnx", help="how --target-mb counts weights")
    p.add_argument(
        "--uniform-bits", type=int, default=None, help="uniform baseline (default: CDPQ's average)"
    )
    p.add_argument("--ladder", type=int, nargs="+", default=[8, 6, 4, 3, 2])
    p.add_argument("--group-size", type=int, default=None, help="per-group weight scales on Linears")
    p.add_argument("--rounds", type=int, default=1, help="KD recovery rounds (each after a reduction pass)")
    p.add_argument("--impact-threshold", type=float, default=0.002)
    p.add_argument("--confidence", default="mean")
    p.add_argument("--order-by", choices=ORDERS, default="confidence")
    p.add_argument("--rounding", choices=("rtn", "gptq"), default="rtn", help="CDPQ: how attempts round")
    p.add_argument(
        "--gptq-after",
        action="store_true",
        help="add a row: the (RTN) search's recipe GPTQ-rounded afterwards, to compare with --rounding gptq",
    )
    p.add_argument("--sensitivity", default=None, help="grad_norm | fisher | hutchinson")
    p.add_argument("--eval-frames", type=int, default=8)
    p.add_argument("--points-per-side", type=int, default=8)
    p.add_argument("--no-learnable", dest="learnable", action="store_false")
    p.add_argument("--bit-lambda", type=float, default=CDPQConfig.bit_lambda, help="default: the CLI's")
    p.add_argument("--bit-lr", type=float, default=None, help="default: automatic (the CLI's)")
    p.add_argument("--diff-epochs", type=int, default=4)
    p.add_argument("--out", default="runs")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--cdpq-run", default=None, help="evaluate this finished CDPQ run instead of searching")
    p.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help="comma list of `sam2-quant eval` method names measured beside CDPQ ('' for none)",
    )
    return p


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model options every CDPQ measurement script shares."""
    p.add_argument("--config", default="sam2.1_hiera_t")
    p.add_argument("--checkpoint", default=None, help="SAM 2 checkpoint; without it: seeded random init")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)


def script_main(
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    to_markdown: Callable[[dict[str, Any]], str],
) -> int:
    """Parse, run, print the Markdown table and the results folder (logging to stderr)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)
    result = run(parser.parse_args(argv))
    print(to_markdown(result) + f"\nresults: {result['out']}")  # noqa: T201 (a benchmark prints its table)
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, build_parser(), run_benchmark, markdown)


if __name__ == "__main__":
    sys.exit(main())
