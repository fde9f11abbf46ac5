"""``sam2-quant validate``: file sizes, latency per onnxruntime EP and parity of an exported ONNX bundle.

The PyTorch reference is rebuilt from the bundle's manifest (config, checkpoint or seed, recipe; the
recipe is re-calibrated on the same photos, which is deterministic). Writes ``report.json`` and
``report.md`` into the bundle folder (fresh names if those exist); exits 1 when parity fails a threshold.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from ..errors import BundleError, ConfigError, RecipeError
from ..io.report import md_table, write_results
from .checks import check_positive
from .common import add_nbits_accuracy_argument
from .ort_options import check_threads

HELP = "validate an ONNX bundle on onnxruntime: size, latency per EP, parity; report.json + report.md"
log = logging.getLogger("sam2-quant.validate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx-dir", required=True, help="folder written by sam2-quant export")
    p.add_argument("--checkpoint", default=None, help="checkpoint of the exported model (if it had one)")
    p.add_argument("--images", default=None, help="photos for parity (default: bundled photos)")
    p.add_argument(
        "--calib-images", default=None, help="folder holding the photos export calibrated on (if not bundled)"
    )
    p.add_argument(
        "--calib-video", default=None, help="folder of the clip export calibrated on (if it moved)"
    )
    p.add_argument("--points-per-side", type=int, default=4, help="point grid decoded for mask IoU")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per graph (median reported)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--min-mask-iou", type=float, default=0.99, help="parity threshold (fused, vs torch)")
    p.add_argument("--min-embed-cosine", type=float, default=0.999, help="parity threshold")
    p.add_argument(
        "--video",
        default=None,
        help="clip (folder of numbered JPEG frames) where a bundle's memory graphs run in SAM 2's video "
        "loop against the torch model (default: the bundled clip)",
    )
    p.add_argument("--max-frames", type=int, default=8, help="frames of --video the video parity runs")
    p.add_argument(
        "--min-video-j",
        type=float,
        default=None,
        help="parity threshold (default 0.98): per-frame mask IoU of the video loop, memory graphs on "
        "onnxruntime vs torch",
    )
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def check_thresholds(args: argparse.Namespace) -> None:
    """Parity thresholds are finite numbers in their metric's range: checked before anything runs."""
    for flag, value, lo, hi in (
        ("--min-mask-iou", args.min_mask_iou, 0.0, 1.0),
        ("--min-embed-cosine", args.min_embed_cosine, -1.0, 1.0),
        ("--min-video-j", args.min_video_j, 0.0, 1.0),
    ):
        if value is not None and not (math.isfinite(value) and lo <= value <= hi):
            raise ConfigError(
                f"{flag} {value} is not a number in {lo:g}..{hi:g} (the range of that metric), so no "
                f"parity result could be judged by it. Fix: pass {flag} within {lo:g}..{hi:g}, or omit it "
                "for the default."
            )


def manifest_recipe(manifest: dict[str, Any]) -> Any:
    """The recipe to rebuild the reference with: the manifest's ``recipe_spec`` (checked now), else the
    shipped recipe it names (bundles before that field), else None (a float bundle)."""
    from ..recipe import Recipe

    if not manifest.get("recipe"):
        return None
    spec = manifest.get("recipe_spec")  # bundles before this field only name a shipped recipe
    if not spec:
        return manifest["recipe"]
    try:
        return Recipe.from_dict(spec, source="manifest.json recipe_spec")
    except RecipeError as e:
        raise BundleError(
            f"{e} (the recipe export recorded was edited). Fix: export the bundle again with "
            "`sam2-quant export --out NEW_FOLDER`, or restore manifest.json from that export."
        ) from None


def _reference(
    manifest: dict,  # type: ignore[type-arg]
    checkpoint: str | None,
    images: list,  # type: ignore[type-arg]
    video: Path | None = None,
) -> object:
    from ..api import freeze, prepare_qat
    from ..calibrate import calibrate
    from ..io.bundle import reference_checkpoint, reference_seed
    from ..models.registry import get_adapter

    ckpt = reference_checkpoint(manifest, checkpoint)  # the manifest's weights path is a label, never opened
    adapter = get_adapter(manifest.get("family", "sam2"))
    size = int(manifest["image_size"])
    model = adapter.build(manifest["config"], ckpt, image_size=size, seed=reference_seed(manifest))
    recipe = manifest_recipe(manifest)
    if recipe is not None:
        q = prepare_qat(model, recipe)
        calibrate(q, images, image_size=int(manifest["image_size"]), progress=False, video=video)
        model = freeze(q)
    return model


def run(args: argparse.Namespace) -> int:
    from ..int8 import host_int8_path
    from ..int8.parity import avx2_parity
    from ..io.bundle import bundle_files
    from ..io.images import bundled_images, list_images, load_image, video_frames
    from ..io.photos import reference_photos, reference_video
    from ..models.adapter import hook
    from ..models.registry import get_adapter
    from ..onnx.audit import runtime_kernels
    from ..onnx.parity import THRESHOLDS, failed_checks
    from ..onnx.pipeline import read_manifest
    from ..onnx.runtime import PROVIDERS, available_eps, missing_provider_message
    from ..onnx.timing import environment, time_interleaved
    from ..sam2.parity import pipeline_parity

    check_thresholds(args)
    d = Path(args.onnx_dir)
    manifest = read_manifest(d)
    manifest_recipe(manifest)  # a hand-edited recipe_spec fails now, not after timing every graph
    size = int(manifest["image_size"])
    check_positive(args.points_per_side, "--points-per-side")
    check_positive(args.repeats, "--repeats")
    check_positive(args.max_frames, "--max-frames")
    check_threads(args.threads)  # negative counts are named here (0: onnxruntime's default)
    if args.video:  # a bad clip (unreadable frame, mixed sizes) is named before any model work
        video_frames(args.video)
    files = bundle_files(d, manifest)  # inside the bundle, regular, complete ONNX files: before opening
    parity_paths = list_images(args.images) if args.images else bundled_images()
    calib = [load_image(p) for p in reference_photos(manifest, args.calib_images, parity_paths)]
    images = [load_image(p) for p in parity_paths]
    report: dict = {"onnx_dir": str(d), "manifest": manifest, "environment": environment()}
    report["missing_providers"] = [m for p in PROVIDERS if (m := missing_provider_message(p))]
    for msg in report["missing_providers"]:
        log.warning("%s: latency is reported for the available providers only", msg)
    report["kernels"] = {key: runtime_kernels(path) for key, path in files.items()}  # CPU EP, this CPU
    report["latency_ms"] = {  # the bundle's graphs timed round-robin, as bench times its variants
        ep: time_interleaved(files, size, provider=ep, threads=args.threads, repeats=args.repeats, warmup=3)
        for ep in available_eps()
    }
    ref = _reference(manifest, args.checkpoint, calib, reference_video(manifest, args.calib_video))
    kw = {"image_size": size, "points_per_side": args.points_per_side, "threads": args.threads}
    enc, dec = files["encoder"], files["decoder"]
    report["parity"] = {
        "simulated": pipeline_parity(ref, enc, dec, images, optimization="disable", **kw),
        "fused": pipeline_parity(ref, enc, dec, images, optimization="all", **kw),
    }
    if "encoder_fp16" in files:  # fp16 graphs of a float bundle, against the float model
        report["parity"]["fp16"] = pipeline_parity(
            ref, files["encoder_fp16"], files["decoder_fp16"], images, optimization="all", **kw
        )
    report["host_int8_path"] = host_int8_path().to_dict()
    log.info("this CPU's %s", report["host_int8_path"]["describe"])
    if manifest.get("recipe"):  # what a CPU without VNNI computes from the same file
        report["parity"]["avx2"] = avx2_parity(
            ref,
            images,
            image_size=size,
            points_per_side=args.points_per_side,  # type: ignore[arg-type]
        )
    thresholds = {"mask_iou": args.min_mask_iou, "embed_cosine": args.min_embed_cosine}
    checked = ["fused"] + (["avx2"] if manifest.get("target_cpu", "any") == "any" else [])
    failures = failed_checks({m: report["parity"][m] for m in checked if m in report["parity"]}, thresholds)
    extra = hook(get_adapter(manifest.get("family", "sam2")), "extra_parity")
    checks = {}
    if extra is not None:  # SAM 2: the memory graphs as its video loop calls them
        kw = {"video": args.video, "max_frames": args.max_frames, "threads": args.threads}
        checks = extra(ref, files, optimization="all", **kw)
    if "video" in checks:
        report["video_parity"] = checks["video"]
        min_j = THRESHOLDS["video_j"] if args.min_video_j is None else args.min_video_j
        thresholds["video_j"] = min_j
        failures += failed_checks({"video": report["video_parity"]}, {"video_j": min_j})
    report["thresholds"] = thresholds
    failure = "; ".join(failures) or None
    report["passed"] = failure is None
    paths = write_results(_fresh(d / "report.json"), report, _fresh(d / "report.md"), _markdown(report))
    log.info("wrote %s and %s", paths["json"], paths["md"])
    if manifest.get("random_init"):
        log.warning(
            "!!! bundle weights are RANDOM INIT (%s): numbers are plumbing only !!!", manifest["weights"]
        )
    if failure:
        log.error("%s", failure)
        return 1
    return 0


KERNELS_NOTE = (
    "MatMul/Conv nodes by kernel (onnxruntime CPU EP, all optimizations, this CPU): int8 = integer kernels "
    "(MatMulIntegerToFloat, QLinearMatMul, QLinearConv); nbits = MatMulNBits (onnxruntime rewrites "
    "weight-only DequantizeLinear -> MatMul into it: int8 activations per block, "
    "session.qdq_matmulnbits_accuracy_level 4); float = float MatMul / Gemm / Conv (attention products "
    "included; weight-only convs: "
    "int8 codes folded to float at load); dq_left = DequantizeLinear nodes left unfused."
)


def _fresh(path: Path) -> Path:
    i = 2
    out = path
    while out.exists():
        out = path.with_name(f"{path.stem}-{i}{path.suffix}")
        i += 1
    return out


def _markdown(r: dict) -> str:  # type: ignore[type-arg]
    from ..onnx.audit import format_kernels
    from ..onnx.timing import cpu_label

    m = r["manifest"]
    lines = [f"# ONNX validation: {r['onnx_dir']}", ""]
    if m.get("random_init"):
        lines += [f"**WARNING: RANDOM-INIT WEIGHTS ({m['weights']}); numbers are plumbing only.**", ""]
    lines += [
        f"- config {m['config']}, image size {m['image_size']}, recipe {m['recipe'] or 'none (float)'}, "
        f"weights stored as {m['weight_format']}, opset {m['opset']}",
        f"- device: {cpu_label(r['environment'])}, onnxruntime "
        f"{r['environment']['onnxruntime']}; latency on a possibly shared machine (median of repeats)",
    ]
    if "nbits_accuracy_level" in r["environment"]:
        level = r["environment"]["nbits_accuracy_level"]
        lines += [f"- weight-only MatMulNBits accuracy level: {level} (`--nbits-accuracy-level`)"]
    lines += [f"- this CPU's {r['host_int8_path']['describe']}"]
    if "avx2" in r["parity"]:
        a = r["parity"]["avx2"]
        how = "proof from the weight codes" if a["method"] == "proof" else "exact kernel model, emulated"
        lines += [f"- AVX2-class CPUs without VNNI ({how}): {a['saturation']}"]
    lines += [f"- file made for target_cpu={m.get('target_cpu', 'any')}"]
    lines += [f"- {msg}" for msg in r["missing_providers"]]
    eps = list(r["latency_ms"])
    lines += [
        "",
        *md_table(
            ["graph", "MB", *(f"{ep} median ms" for ep in eps), "CPU EP MatMul/Conv nodes by kernel"],
            [
                [
                    key,
                    f"{nbytes / 1e6:.2f}",
                    *(f"{r['latency_ms'][ep][key]['median_ms']:.1f}" for ep in eps),
                    format_kernels(r["kernels"][key]),
                ]
                for key, nbytes in m["bytes"].items()
            ],
        ),
    ]
    lines += ["", KERNELS_NOTE]
    nan = float("nan")
    lines += [
        "",
        *md_table(
            ("ORT vs PyTorch", "embed cosine", "embed max abs", "mask IoU", "masks (degenerate)"),
            [
                (
                    mode,
                    f"{p['embed_cosine']:.6f}",
                    f"{p.get('embed_max_abs', nan):.4g}",
                    f"{p.get('mask_iou', nan):.4f}",
                    f"{p.get('n_masks', 0)} ({p.get('n_degenerate', 0)})",
                )
                for mode, p in r["parity"].items()
            ],
        ),
    ]
    if "video_parity" in r:
        v = r["video_parity"]
        lines += [
            "",
            f"Video loop ({v['graphs']} on onnxruntime vs torch, {v['n_objects']} objects, {v['n_frames']} "
            f"frames, up to {v['max_obj_ptr_tokens']} object-pointer tokens): video J {v['video_j']:.4f}, "
            f"worst frame {v['worst_frame_iou']:.4f}",
        ]
    lines += ["", f"**{'PASSED' if r['passed'] else 'FAILED'}** thresholds {r['thresholds']}", ""]
    return "\n".join(lines)
