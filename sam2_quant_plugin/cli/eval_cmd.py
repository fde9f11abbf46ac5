"""``sam2-quant eval``: the fidelity table. Every method (ours and the baselines) against the float teacher on
the same photos and prompts: mask IoU (points, boxes, video), feature cosine, bits, size and latency.
"""

from __future__ import annotations

import argparse
import logging
import shlex

from ..errors import ConfigError
from ..eval.baselines.registry import DEFAULT_METHODS, METHODS
from ..eval.latency import set_threads
from ..eval.pipeline import run_eval
from ..io.images import video_frames
from .checks import check_positive, check_writable
from .common import add_model_arguments, add_nbits_accuracy_argument, build_model, weights_label
from .ort_options import check_threads

HELP = "fidelity table vs the float teacher: ours vs torch.ao, onnxruntime and NNCF quantizers"
log = logging.getLogger("sam2-quant.eval")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, image_size=512)
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated rows (default: all): {', '.join(METHODS)}",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="extra row from a recipe YAML (e.g. cdpq=runs/cdpq/recipe.yaml); repeatable; "
        "a NAME in --methods (e.g. learnable) is replaced",
    )
    p.add_argument("--images", default=None, help="photos scored (default: the 2 bundled photos)")
    p.add_argument(
        "--calib-images",
        default=None,
        help="photos every data-aware method calibrates on (default: the 2 bundled photos); scoring on "
        "photos also used for calibration is marked in-sample in the report",
    )
    p.add_argument(
        "--calib-video",
        default=None,
        help="frame folder the rows over memory layers calibrate on (default: the bundled clip)",
    )
    p.add_argument("--video", default=None, help="folder of JPEG frames (default: bundled 8-frame bedroom)")
    p.add_argument("--max-frames", type=int, default=8, help="first N frames of the video (0: all)")
    p.add_argument("--no-video", action="store_true", help="skip the video propagation column")
    p.add_argument("--points-per-side", type=int, default=8, help="point-prompt grid per image")
    p.add_argument("--max-boxes", type=int, default=16, help="most teacher-mask boxes per image")
    p.add_argument("--box-mode", choices=("teacher", "fixed", "both"), default="both", help="box prompts")
    p.add_argument("--keep-artifacts", action="store_true", help="keep the encoder ONNX files in the run")
    p.add_argument("--no-timing", action="store_true", help="skip latency measurements")
    p.add_argument("--time-repeats", type=int, default=3, help="timed encoder runs per method (median)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch and onnxruntime (default 1: stable latency on a shared host; 0: all)",
    )
    p.add_argument("--out", default="runs/eval", help="parent folder; each run gets a fresh sub-folder")
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def command_line(args: argparse.Namespace) -> str:
    """The exact command that reproduces this run."""
    parts = ["sam2-quant", "eval", "--config", args.config, "--image-size", str(args.image_size)]
    parts += ["--seed", str(args.seed), "--threads", str(args.threads), "--methods", args.methods]
    if args.checkpoint:
        parts += ["--checkpoint", args.checkpoint]
    for r in args.recipe:
        parts += ["--recipe", r]
    for flag in ("images", "calib_images", "calib_video", "video"):
        if getattr(args, flag):
            parts += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    parts += ["--max-frames", str(args.max_frames)]
    parts += ["--points-per-side", str(args.points_per_side), "--max-boxes", str(args.max_boxes)]
    parts += ["--box-mode", args.box_mode, "--time-repeats", str(args.time_repeats), "--out", args.out]
    if args.nbits_accuracy_level is not None:
        parts += ["--nbits-accuracy-level", str(args.nbits_accuracy_level)]
    flags = (("--no-video", args.no_video), ("--no-timing", args.no_timing))
    parts += [f for f, on in (*flags, ("--keep-artifacts", args.keep_artifacts)) if on]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    for flag in ("points_per_side", "max_boxes", "time_repeats"):
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.max_frames < 0:
        raise ConfigError(f"--max-frames is {args.max_frames}. Fix: pass 0 (all frames) or a positive count.")
    check_writable(args.out)
    set_threads(check_threads(args.threads) or 0)
    for clip in (args.calib_video, None if args.no_video else args.video):
        if clip is not None:
            video_frames(clip)  # a bad clip fails here, before the teacher is built
    teacher = build_model(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results, paths = run_eval(
        teacher,
        out=args.out,
        methods=methods,
        recipes=args.recipe,
        images=args.images,
        calib_images=args.calib_images,
        calib_video=args.calib_video,
        video=False if args.no_video else args.video,
        max_frames=args.max_frames or None,
        points_per_side=args.points_per_side,
        max_boxes=args.max_boxes,
        box_mode=args.box_mode,
        seed=args.seed,
        timing=not args.no_timing,
        time_repeats=args.time_repeats,
        keep_artifacts=args.keep_artifacts,
        command=command_line(args),
    )
    failed = [r["method"] for r in results["rows"] if "error" in r]
    log.info("results: %s (weights: %s)", paths["md"], weights_label(teacher))
    if failed:
        log.error("%d method(s) failed: %s (see results.md)", len(failed), ", ".join(failed))
    return 1 if failed else 0
