"""``sam2-quant export``: SAM 2 (float or quantized with a recipe) as encoder.onnx + decoder.onnx."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import ExportError
from .checks import check_export_target
from .common import (
    add_calib_video_argument,
    add_graphs_argument,
    add_model_arguments,
    add_nbits_accuracy_argument,
    build_model,
    check_calib_video,
    weights_label,
)
from .export_profile import PROFILE_DIR, PROFILE_KEYS, load_profile

__all__ = ["PROFILE_DIR", "PROFILE_KEYS", "add_arguments", "load_profile", "resolve_options", "run"]

HELP = "export SAM 2 (float or quantized with --recipe) as encoder.onnx + decoder.onnx (+ manifest.json)"
log = logging.getLogger("sam2-quant.export")
DEFAULTS = {
    "weight_format": "int8",
    "fp16": False,
    "opset": 17,
    "image_size": 1024,
    "multimask": False,
    "target_cpu": "any",
    "nbits_widths": [2, 4, 8],
    "graphs": [],
}
FORMAT_HELP = (
    "how quantized weights are stored. int8 (default): integer initializers -> DequantizeLinear, fused "
    "into int8 kernels by onnxruntime's CPU EP and by OpenVINO (weight-only convs: integer codes -> "
    "Cast -> Mul, folded to float when a session loads). qdq: float weights -> QuantizeLinear -> "
    "DequantizeLinear; onnxruntime runs these in float (simulated quantization), OpenVINO in int8, and "
    "both agree when the file is saturation-free (--target-cpu any). int4: 2..4-bit weights as INT4 "
    "(opset 21). matmulnbits: every Linear as onnxruntime's weight-only MatMulNBits (CPU and CUDA EP)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, image_size=None)  # type: ignore[arg-type]
    add_calib_video_argument(p)
    p.add_argument("--recipe", default=None, help="recipe YAML or shipped name; omitted: float export")
    p.add_argument("--images", default=None, help="calibration photos folder (default: bundled photos)")
    p.add_argument("--out", required=True, help="output folder (must not hold a bundle yet)")
    p.add_argument(
        "--profile",
        default=None,
        help="export profile: a shipped name (export/profiles/*.yaml) or a YAML path",
    )
    p.add_argument(
        "--weight-format",
        default=None,
        choices=("qdq", "int8", "int4", "matmulnbits"),
        help=FORMAT_HELP,
    )
    p.add_argument(
        "--target-cpu",
        default=None,
        choices=("any", "vnni"),
        help="the CPUs the file must be right on. any (default): refuse int8 layers whose weights could "
        "saturate int16 on CPUs without VNNI (AVX2, AVX-512 without VNNI); vnni: allow them, for files that "
        "only run on AVX512-VNNI / AVX-VNNI CPUs (a warning and the manifest say so)",
    )
    add_graphs_argument(
        p, extra_help="; a recipe over them adds them itself; validate runs them in SAM 2's video loop"
    )
    p.add_argument(
        "--nbits-widths",
        type=int,
        nargs="+",
        default=None,
        help="matmulnbits: the MatMulNBits widths the runtime has (default 2 4 8: onnxruntime's CPU EP; a "
        "layer takes the smallest that holds it, so 3-bit layers take 4). Pass 4 8 for a runtime without "
        "2-bit kernels",
    )
    p.add_argument("--fp16", action="store_true", default=None, help="also write fp16 graphs (float export)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (int4 needs 21)")
    p.add_argument("--multimask", action="store_true", default=None, help="decoder returns 3 masks")
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def resolve_options(args: argparse.Namespace) -> dict[str, object]:
    """CLI flags given explicitly win over the profile, the profile over the defaults."""
    profile = load_profile(args.profile)
    opts: dict[str, object] = {}
    for key in ("recipe", *DEFAULTS):
        v = getattr(args, key)
        opts[key] = v if v is not None else profile.get(key, DEFAULTS.get(key))
    widths = opts["nbits_widths"]
    if not isinstance(widths, (list, tuple)) or not all(isinstance(b, int) for b in widths):
        raise ExportError(f"nbits_widths must be a list of bit widths such as [2, 4, 8], got {widths!r}")
    from ..onnx.matmulnbits import check_widths

    check_widths(widths)  # e.g. --nbits-widths 3: refused now, not after calibrating
    return opts


def run(args: argparse.Namespace) -> int:
    from ..api import freeze, prepare_qat
    from ..calibrate import calibrate
    from ..int8.safety import check_recipe_target
    from ..io.bundle import CALIBRATION_ATTR
    from ..io.images import bundled_images, list_images, load_image
    from ..io.photos import describe_photos
    from ..onnx.export import check_export_options
    from ..onnx.pipeline import export_bundle

    opts = resolve_options(args)
    check_export_options(int(opts["opset"]), str(opts["weight_format"]))  # fail before the slow part
    args.image_size = int(opts["image_size"])  # type: ignore[arg-type]
    check_calib_video(args, has_recipe=bool(opts["recipe"]))
    model = build_model(args)
    check_export_target(args.out, model, opts)  # new, writable, room for the bundle: before calibrating
    if opts["recipe"]:
        paths = list_images(args.images) if args.images else bundled_images()
        qmodel = prepare_qat(model, opts["recipe"])  # type: ignore[arg-type]
        check_recipe_target(qmodel, str(opts["target_cpu"]))  # before calibrating
        calibrate(qmodel, [load_image(p) for p in paths], image_size=args.image_size, video=args.calib_video)
        model = freeze(qmodel)
        setattr(
            model, CALIBRATION_ATTR, describe_photos(paths, bundled=not args.images, video=args.calib_video)
        )
    manifest = export_bundle(
        model,
        args.out,
        image_size=args.image_size,
        weight_format=str(opts["weight_format"]),
        opset=int(opts["opset"]),  # type: ignore[arg-type]
        fp16=bool(opts["fp16"]),
        multimask=bool(opts["multimask"]),
        target_cpu=str(opts["target_cpu"]),
        nbits_widths=tuple(int(b) for b in opts["nbits_widths"]),  # type: ignore[attr-defined]
        graphs=tuple(str(g) for g in opts["graphs"]),  # type: ignore[attr-defined]  # + the recipe's own
    )
    for key, size in manifest["bytes"].items():  # type: ignore[union-attr]
        log.info("%-13s %8.2f MB  %s", key, size / 1e6, Path(args.out) / manifest["files"][key])  # type: ignore[index]
    label = weights_label(model)
    if label.startswith("RANDOM"):
        log.warning("!!! exported weights are %s !!!", label)
    return 0
