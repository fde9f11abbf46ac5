"""``sam2-quant infer``: segment one photo from point / box prompts with an exported ONNX bundle."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ..errors import BundleError, DataError
from .checks import check_box, check_point, parse_floats
from .common import add_nbits_accuracy_argument
from .ort_options import check_provider, free_prefix, output_files

HELP = (
    "run encoder.onnx + decoder.onnx on a photo with --point X,Y / --box x0,y0,x1,y1; save mask + overlay PNG"
)
log = logging.getLogger("sam2-quant.infer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx-dir", required=True, help="folder written by sam2-quant export")
    p.add_argument("--image", required=True, help="photo (jpg/png)")
    p.add_argument("--point", action="append", default=[], help="foreground point X,Y in image pixels")
    p.add_argument("--neg-point", action="append", default=[], help="background point X,Y")
    p.add_argument("--box", default=None, help="box x0,y0,x1,y1 in image pixels")
    p.add_argument(
        "--out",
        default=None,
        help="output prefix: writes <prefix>.png and <prefix>_overlay.png, never over existing files "
        "(default: <image stem>_mask beside the --onnx-dir folder, not inside it; _mask_2, _mask_3, ... "
        "when taken)",
    )
    p.add_argument("--provider", default="cpu", choices=("cpu", "cuda"), help="onnxruntime EP")
    p.add_argument("--fp16", action="store_true", help="use the bundle's fp16 graphs")
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def prompts(args: argparse.Namespace, hw: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Point coords ``[1, N, 2]`` in model-input pixels and labels ``[1, N]`` (box corners: labels 2, 3)."""
    pts, labels = [], []
    for text in args.point:
        pts.append(parse_floats(text, 2, "point"))
        check_point(*pts[-1], hw, f"--point {text}")
        labels.append(1)
    for text in args.neg_point:
        pts.append(parse_floats(text, 2, "neg-point"))
        check_point(*pts[-1], hw, f"--neg-point {text}")
        labels.append(0)
    if args.box:
        x0, y0, x1, y1 = parse_floats(args.box, 4, "box")
        check_box((x0, y0, x1, y1), hw)
        pts = [[x0, y0], [x1, y1], *pts]
        labels = [2, 3, *labels]
    if not pts:
        raise DataError("no prompt given. Fix: pass --point X,Y (repeatable) and/or --box x0,y0,x1,y1")
    h, w = hw
    coords = np.asarray(pts, dtype=np.float32) * np.array([size / w, size / h], dtype=np.float32)
    return coords[None], np.asarray(labels, dtype=np.int32)[None]


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ..io.atomic import atomic_write
    from ..io.bundle import bundle_files
    from ..onnx.pipeline import read_manifest
    from ..onnx.runtime import make_session
    from ..sam2.preprocess import load_image, to_model_input

    d = Path(args.onnx_dir)
    manifest = read_manifest(d)
    size = int(manifest["image_size"])
    suffix = "_fp16" if args.fp16 else ""
    if f"encoder{suffix}" not in manifest["files"]:
        raise BundleError(
            f"--fp16: bundle {d} has no fp16 graphs (files: {sorted(manifest['files'])}). Fix: drop "
            "--fp16, or export again with --fp16 (float or weight-only recipes)."
        )
    files = bundle_files(d, manifest, [f"encoder{suffix}", f"decoder{suffix}"])
    check_provider(args.provider)
    img = load_image(args.image)
    coords, labels = prompts(args, img.shape[:2], size)
    # next to the bundle folder, never inside it (a bundle holds what export wrote, nothing else)
    suffixes = (".png", "_overlay.png")
    default = d.resolve().parent / f"{Path(args.image).stem}_mask"  # taken: _mask_2, _mask_3, ...
    prefix = Path(args.out) if args.out else free_prefix(default, suffixes)
    mask_path, over_path = output_files(prefix, suffixes)  # both free: before inference
    # deployment: a file this CPU's int8 kernels get wrong is refused (Int8Error names the fix)
    enc = make_session(files[f"encoder{suffix}"], args.provider, wrong_cpu="error")
    dec = make_session(files[f"decoder{suffix}"], args.provider, wrong_cpu="error")
    embed, hr0, hr1 = enc.run(None, {"image": to_model_input([img], size).numpy()})
    feed = {"image_embed": embed, "high_res_feats_0": hr0, "high_res_feats_1": hr1}
    masks, iou = dec.run(None, {**feed, "point_coords": coords, "point_labels": labels})
    best = int(np.argmax(iou[0]))
    logits = torch.from_numpy(masks[:, best : best + 1])
    full = F.interpolate(logits, size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    mask = (full > 0).numpy()
    overlay = img.astype(np.float32)
    overlay[mask] = 0.5 * overlay[mask] + 0.5 * np.array([30, 144, 255], dtype=np.float32)
    made = [p for p in (prefix.parent, *prefix.parent.parents) if not p.exists()]
    mask_png = atomic_write(
        mask_path, lambda p: Image.fromarray(mask.astype(np.uint8) * 255).save(p, format="PNG")
    )
    try:
        over_png = atomic_write(
            over_path, lambda p: Image.fromarray(overlay.clip(0, 255).astype(np.uint8)).save(p, format="PNG")
        )
    except BaseException:  # both files or neither
        _remove_partial(mask_png, made)
        raise
    log.info(
        "mask %s (%.1f%% of the image, predicted IoU %.3f), overlay %s",
        mask_png,
        100 * mask.mean(),
        float(iou[0, best]),
        over_png,
    )
    if manifest.get("random_init"):
        log.warning(
            "!!! bundle weights are RANDOM INIT (%s): the mask is not a segmentation !!!", manifest["weights"]
        )
    return 0


def _remove_partial(written: Path, made: list[Path]) -> None:
    """Remove a file this command wrote and the folders it created for it (if empty now)."""
    written.unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break
