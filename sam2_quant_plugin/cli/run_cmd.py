"""``sam2-quant run``: the main job. Quantize SAM 2 with a recipe, calibrate on photos, freeze, measure
fidelity against the float model, export QDQ ONNX and validate it on onnxruntime; all in a fresh run folder.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from ..api import current_recipe, freeze, prepare_qat, weight_bits_summary
from ..calibrate import calibrate
from ..errors import ConfigError
from ..io.atomic import atomic_write
from ..io.bundle import CALIBRATION_ATTR, MANIFEST
from ..io.images import bundled_images, list_images, load_image
from ..io.photos import describe_photos
from ..io.report import md_table, write_results
from ..io.staging import final_name, new_staged_run_dir, publish_run_dir
from ..models.registry import adapter_for
from ..recipe import load_recipe, save_recipe
from .checks import check_positive, check_writable, expected_run_bytes
from .common import (
    add_calib_video_argument,
    add_graphs_argument,
    add_model_arguments,
    add_nbits_accuracy_argument,
    build_model,
    check_calib_video,
    weights_label,
)

HELP = "quantize SAM 2 with a recipe on photos, report fidelity, export + validate ONNX (the main job)"
log = logging.getLogger("sam2-quant.run")
ONNX_DIR = "onnx"  # the bundle's folder inside the run folder
IMAGE_PATH = ("encoder", "decoder")  # the graphs the parity comparisons run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, image_size=512)
    add_calib_video_argument(p)
    p.add_argument(
        "--recipe", default="w8a8", help="recipe YAML path or shipped name (sam2-quant inspect --list)"
    )
    p.add_argument("--images", default=None, help="folder of calibration photos (default: bundled photos)")
    p.add_argument("--out", default="runs", help="parent folder; each run gets a fresh sub-folder")
    p.add_argument("--points-per-side", type=int, default=8, help="point-prompt grid for mask IoU")
    p.add_argument("--no-export", action="store_true", help="skip ONNX export and onnxruntime validation")
    p.add_argument(
        "--target-cpu",
        default="any",
        choices=("any", "vnni"),
        help="CPUs the exported file must be right on (see sam2-quant export --help)",
    )
    add_graphs_argument(
        p,
        extra_help="; those the recipe targets (memory_attention, memory_encoder) are added without it. "
        "Parity is checked on encoder + decoder",
    )
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    recipe = load_recipe(args.recipe)
    check_positive(args.points_per_side, "--points-per-side")
    if args.graphs and args.no_export:
        raise ConfigError("--graphs names graphs to export, but --no-export skips the export. Fix: drop one.")
    check_calib_video(args)
    model = build_model(args)
    weights = weights_label(model)
    paths = list_images(args.images) if args.images else bundled_images()
    images = [load_image(p) for p in paths]
    check_writable(args.out, expected_run_bytes(model, export=not args.no_export))  # before calibrating
    run_dir = new_staged_run_dir(args.out, f"{recipe.name}_{args.config}")  # renamed into place when done
    log.info("run folder: %s (appears when the run is done)", final_name(run_dir))

    qmodel = prepare_qat(model, recipe)
    if not args.no_export:
        from ..int8.safety import check_recipe_target

        check_recipe_target(qmodel, args.target_cpu)  # before calibrating
    calibrate(qmodel, images, image_size=args.image_size, video=args.calib_video)
    frozen = freeze(qmodel)
    setattr(
        frozen, CALIBRATION_ATTR, describe_photos(paths, bundled=not args.images, video=args.calib_video)
    )  # for the manifest
    fid = adapter_for(model).fidelity(
        model, frozen, images, image_size=args.image_size, points_per_side=args.points_per_side
    )
    bits = weight_bits_summary(frozen)
    save_recipe(current_recipe(frozen, name=f"{recipe.name}-resolved"), run_dir / "recipe.yaml")
    atomic_write(run_dir / "frozen_state_dict.pt", lambda p: torch.save(frozen.state_dict(), p))

    report = {
        "weights": weights,
        "config": args.config,
        "image_size": args.image_size,
        "recipe": recipe.name,
        "images": [str(p) for p in paths],
        "calibration_video": args.calib_video,
        "avg_weight_bits": bits["avg_weight_bits"],
        "quantized_weight_mib": bits["weight_bytes"] / 2**20,
        "fidelity_vs_float_torch": fid,
    }
    if not args.no_export:
        from ..onnx.pipeline import export_and_validate  # onnx extras: pip install .[onnx]

        report["onnx"] = export_and_validate(
            model,
            frozen,
            images,
            run_dir / ONNX_DIR,
            image_size=args.image_size,
            target_cpu=args.target_cpu,
            graphs=args.graphs or (),
            extra_kw={"video": args.calib_video},  # memory graphs: checked on the clip run calibrated on
        )
        report["onnx"]["files"] = exported_files(report["onnx"]["manifest"])
        report["onnx"]["parity_failures"] = parity_failures(report["onnx"], args.target_cpu)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(run_dir / "report.json", report, run_dir / "report.md", _markdown(report, args))
    run_dir = publish_run_dir(run_dir)
    log.info(
        "mask IoU vs float %.4f, embed cosine %.5f, avg W bits %.2f -> %s",
        fid["mask_iou"],
        fid["embed_cosine"],
        bits["avg_weight_bits"],
        run_dir / "report.md",
    )
    if weights.startswith("RANDOM"):
        log.warning("weights are %s", weights)
    failures = report.get("onnx", {}).get("parity_failures", [])
    for failure in failures:
        log.error("DEPLOYED FILE OFF: %s (report: %s)", failure, run_dir / "report.md")
    return 1 if failures else 0


def exported_files(manifest: dict) -> list[str]:
    """Every file the export wrote, relative to the run folder: each graph, then the manifest."""
    return [f"{ONNX_DIR}/{name}" for name in (*manifest["files"].values(), MANIFEST)]


def parity_failures(o: dict, target_cpu: str) -> list[str]:
    """Every way the deployed file is off from PyTorch fake-quant beyond the parity bound."""
    from ..onnx.parity import failed_checks

    checks = {"onnxruntime fused int8 on this CPU": o["vs_torch_fake_quant_fused"]}
    if target_cpu == "any":
        checks["an AVX2-class CPU without VNNI"] = o["avx2_vs_torch_fake_quant"]
    for name, result in o.get("extra_vs_torch_fake_quant_fused", {}).items():
        checks[f"onnxruntime {name} ({result.get('graphs', '')})"] = result
    return failed_checks(checks)


def _markdown(r: dict, args: argparse.Namespace) -> str:
    f = r["fidelity_vs_float_torch"]
    lines = [
        f"# sam2-quant run: {r['recipe']} on {r['config']}",
        "",
        f"**Weights: {r['weights']}**",
        "",
        f"- images: {len(r['images'])} ({', '.join(Path(p).name for p in r['images'][:4])})",
        f"- image size: {r['image_size']}",
        f"- average weight bits: {r['avg_weight_bits']:.2f} "
        f"({r['quantized_weight_mib']:.2f} MiB of quantized weights)",
        f"- PyTorch fake-quant vs float: mask IoU {f['mask_iou']:.4f} over "
        f"{f['n_masks'] - f['n_degenerate']} masks ({f['degenerate_share']:.0%} degenerate teacher masks "
        f"excluded), embedding cosine {f['embed_cosine']:.5f}",
    ]
    if "onnx" in r:
        lines += ["", *_onnx_markdown(r["onnx"])]
    lines += [
        "",
        f"Command: `sam2-quant run --recipe {args.recipe} --config {args.config} "
        f"--image-size {args.image_size}{_extra_flags(args)}`",
        "",
    ]
    return "\n".join(lines)


def _extra_flags(args: argparse.Namespace) -> str:
    out = f" --graphs {' '.join(args.graphs)}" if getattr(args, "graphs", None) else ""
    level = getattr(args, "nbits_accuracy_level", None)
    return out + (f" --nbits-accuracy-level {level}" if level is not None else "")


def _onnx_markdown(o: dict) -> list[str]:
    from ..onnx.audit import format_kernels

    m = o["manifest"]
    sizes = [f"{ONNX_DIR}/{name} {m['bytes'][k] / 1e6:.1f} MB" for k, name in m["files"].items()]
    avx2 = o["avx2_vs_torch_fake_quant"]
    rows = [
        ("onnxruntime (Q/DQ as written) vs PyTorch fake-quant", o["vs_torch_fake_quant_simulated"]),
        ("onnxruntime (fused int8 kernels, this CPU) vs PyTorch fake-quant", o["vs_torch_fake_quant_fused"]),
        (f"AVX2-class CPU without VNNI vs exact int8 kernels ({avx2['method']})", avx2),
        ("onnxruntime (fused int8 kernels, this CPU) vs float PyTorch", o["vs_torch_float_fused"]),
    ]
    out = [
        "## ONNX (CPU EP)",
        "",
        "files: " + ", ".join(sizes) + f", {ONNX_DIR}/{MANIFEST} (per-layer bytes)",
        "",
        *md_table(
            ("comparison", "mask IoU", "embedding cosine", "embedding max abs diff"),
            [(name, f"{p['mask_iou']:.4f}", f"{p['embed_cosine']:.5f}", _max_abs(p)) for name, p in rows],
        ),
        *_memory_checks(o),
    ]
    host = o["host_int8_path"]
    out += [
        "",
        f"- this CPU's {host['describe']}",
        f"- AVX2-class CPUs: {avx2['saturation']}"
        + (
            " (proof from the weight codes: the same integers as every x86 int8 path)"
            if avx2["method"] == "proof"
            else " (emulated with the exact kernel model, sam2_quant_plugin.int8)"
        ),
        f"- file made for: target_cpu={o['manifest'].get('target_cpu', 'any')}",
        "- MatMul/Conv nodes by onnxruntime CPU EP kernel (this CPU; float includes attention products): "
        + "; ".join(f"{name} {format_kernels(k)}" for name, k in o.get("kernels", {}).items()),
    ]
    if o.get("parity_failures"):
        out += ["", "**DEPLOYED FILE OFF FROM FAKE-QUANT:**", *[f"- {f}" for f in o["parity_failures"]]]
    return out


def _memory_checks(o: dict) -> list[str]:
    """The checks of the graphs the image comparisons do not run (SAM 2: memory graphs in its video loop)."""
    rest = ", ".join(name for k, name in o["manifest"]["files"].items() if k not in IMAGE_PATH)
    if not rest:
        return []
    out = ["", f"The table runs {' + '.join(IMAGE_PATH)}; {rest} are checked in SAM 2's video loop:"]
    for name, v in o.get("extra_vs_torch_fake_quant_fused", {}).items():
        out += [
            f"- {name}: {v.get('graphs')} on onnxruntime (fused) vs PyTorch fake-quant, "
            f"{v.get('n_objects')} objects over {v.get('n_frames')} frames "
            f"(up to {v.get('max_obj_ptr_tokens')} object-pointer tokens): "
            f"video J {v['video_j']:.4f}, worst frame {v['worst_frame_iou']:.4f}",
        ]
    return out


def _max_abs(p: dict) -> str:
    return f"{p['embed_max_abs']:.4f}" if "embed_max_abs" in p else "-"
