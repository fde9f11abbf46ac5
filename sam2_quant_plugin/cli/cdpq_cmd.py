"""``sam2-quant cdpq``: distillation-driven per-layer bit search (or learnable bits) -> recipe + package.

Runs under ``torchrun --nproc_per_node N -m sam2_quant_plugin.cli.main cdpq ...`` with DDP as well.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace

from ..cdpq import ddp
from ..cdpq.confidence import heuristics
from ..cdpq.config import ORDERS, CDPQConfig
from ..cdpq.run import Interrupted, load_config, run_cdpq
from ..errors import ConfigError
from ..numerics import STORAGE_MODES
from .checks import check_writable
from .common import add_model_arguments

HELP = "CDPQ: choose per-layer weight bits by distillation (search or learnable) and write a recipe"
log = logging.getLogger("sam2-quant.cdpq")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, image_size=256)
    p.add_argument("--teacher-config", default=None, help="teacher config (default: the student's)")
    p.add_argument("--teacher-checkpoint", default=None, help="teacher checkpoint (default: --checkpoint)")
    p.add_argument(
        "--images",
        default=None,
        help="image folder or SA-V root (JPEGImages_24fps/<video>/*.jpg with "
        "Annotations_6fps/<video>/<obj>/*.png: "
        "prompts come from the masks)",
    )
    p.add_argument("--val-images", default=None, help="validation images (default: --images, new prompts)")
    p.add_argument(
        "--video",
        default=None,
        help="frame folder for memory-path targets (--target-roots memory_attention memory_encoder): the "
        "teacher propagates point prompts over it and its calls into those modules are replayed for the "
        "student (default: the bundled 8-frame clip)",
    )
    p.add_argument("--video-frames", type=int, default=8, help="first N frames of --video (0: all)")
    p.add_argument("--name", default="cdpq", help="run name (folder suffix)")
    p.add_argument("--out", default="runs", help="parent folder of the run folder")
    p.add_argument("--mode", choices=("search", "differentiable"), default="search")
    p.add_argument(
        "--ladder", type=int, nargs="+", default=[8, 4, 2], help="bit ladder, e.g. 8 4 2 or 8 7 6 5 4 3 2"
    )
    p.add_argument("--target-roots", nargs="+", default=["image_encoder"], help="module prefixes to quantize")
    p.add_argument("--target-bits", type=float, default=None, help="budget: average weight bits")
    p.add_argument(
        "--target-mb",
        type=float,
        default=None,
        help="budget: quantized weight megabytes, counted as --storage says",
    )
    p.add_argument(
        "--storage",
        choices=STORAGE_MODES,
        default="onnx",
        help="how --target-mb counts a weight: onnx = as exported (INT4 for <= 4 bits, int8 above), "
        "packed = at its exact width",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="one weight scale per N inputs of a channel on Linear layers (MatMulNBits block layout, "
        "e.g. 32); default: one per output channel",
    )
    p.add_argument("--impact-threshold", type=float, default=0.01, help="max validation-loss rise per drop")
    p.add_argument("--confidence", default="mean", choices=heuristics())
    p.add_argument(
        "--order-by",
        choices=ORDERS,
        default="confidence",
        help="candidate order per pass: the confidence heuristic, or probe (loss rise per byte saved)",
    )
    p.add_argument("--sensitivity", default=None, choices=("grad_norm", "fisher", "hutchinson"))
    p.add_argument("--rounds", type=int, default=2, help="KD recovery rounds (each after a reduction pass)")
    p.add_argument("--epochs", type=int, default=1, help="KD epochs per round")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--bit-lambda", type=float, default=0.05, help="differentiable mode: bit penalty weight")
    p.add_argument(
        "--rounding",
        choices=("rtn", "gptq"),
        default="rtn",
        help="how a lowered layer is rounded when it is scored: rtn (MSE-clipped round to nearest) or gptq "
        "(GPTQ from the layer's input Hessian; Linear layers, convolutions stay rtn)",
    )
    p.add_argument(
        "--autocast",
        choices=("bf16", "fp16"),
        default=None,
        help="run the frozen teacher under CUDA autocast (its outputs kept as float32; ignored on CPU)",
    )
    p.add_argument(
        "--bit-lr",
        type=float,
        default=None,
        help="differentiable mode: bit learning rate (default: 2 x (max - min bits) / planned steps)",
    )
    p.add_argument(
        "--max-attempts", type=int, default=None, help="stop after N attempts in all (resume later)"
    )
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument(
        "--set", default=None, metavar="JSON", help="extra CDPQConfig fields, e.g. '{\"rounds\": 0}'"
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def config_from_args(args: argparse.Namespace) -> CDPQConfig:
    d = {
        "name": args.name,
        "student_config": args.config,
        "teacher_config": args.teacher_config or args.config,
        "student_checkpoint": args.checkpoint,
        "teacher_checkpoint": args.teacher_checkpoint or args.checkpoint,
        "image_size": args.image_size,
        "seed": args.seed,
        "train_images": args.images,
        "val_images": args.val_images,
        "video": args.video,
        "video_frames": args.video_frames or None,
        "mode": args.mode,
        "ladder": tuple(args.ladder),
        "target_roots": tuple(args.target_roots),
        "target_avg_bits": args.target_bits,
        "target_bytes": args.target_mb * 1e6 if args.target_mb is not None else None,  # 0 is a budget
        "storage": args.storage,
        "group_size": args.group_size,
        "impact_threshold": args.impact_threshold,
        "confidence": args.confidence,
        "order_by": args.order_by,
        "sensitivity": args.sensitivity,
        "rounds": args.rounds,
        "epochs_per_round": args.epochs,
        "lr": args.lr,
        "bit_lambda": args.bit_lambda,
        "bit_lr": args.bit_lr,
        "device": args.device,
        "rounding": args.rounding,
        "autocast": args.autocast,
        "max_attempts": args.max_attempts,
    }
    if args.set:
        d.update(parse_set(args.set))
    return CDPQConfig.from_dict(d)


def parse_set(text: str) -> dict[str, object]:
    try:
        extra = json.loads(text)
    except ValueError as e:
        raise ConfigError(
            f"--set {text!r:.80} is not valid JSON ({e}). Fix: pass a JSON object, e.g. "
            "--set '{\"rounds\": 0}'."
        ) from None
    if not isinstance(extra, dict):
        raise ConfigError(
            f"--set {text!r:.80} is not a JSON object. Fix: pass CDPQConfig fields, e.g. '{{\"rounds\": 0}}'."
        )
    return extra


def run(args: argparse.Namespace) -> int:
    ddp.init_from_env()
    if args.resume:  # the saved config, but --max-attempts as given now (none: run to the end)
        cfg = replace(load_config(args.resume), max_attempts=args.max_attempts, device=args.device)
    else:
        cfg = config_from_args(args)
        if cfg.video is not None:
            from ..sam2.video import video_frames

            video_frames(cfg.video)  # a bad clip folder fails before any model is built
        check_writable(args.out)
    try:
        summary = run_cdpq(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except Interrupted as e:
        log.error(
            "interrupted (Ctrl-C); the last accepted step is saved in %s. Fix: continue with "
            "`sam2-quant cdpq --resume %s`",
            e.run_dir,
            e.run_dir,
        )
        return 130
    if not ddp.is_main():
        return 0
    if summary.get("interrupted"):
        log.warning(
            "stopped after %d attempts; continue with --resume %s", summary["attempts"], summary["run_dir"]
        )
        return 0
    size = summary["size"]
    log.info(
        "avg weight bits %.3f, %.2f MB (%s), bits %s, %d attempts; recipe: %s/recipe.yaml",
        size["avg_weight_bits"],
        size["total_mb"],
        " + ".join(cfg.target_roots),
        summary["bit_histogram"],
        summary["attempts"],
        summary["run_dir"],
    )
    return 0
