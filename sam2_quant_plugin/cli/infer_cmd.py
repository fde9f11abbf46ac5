"""``sam2-quant infer``: segment one photo from point / box prompts with an exported ONNX bundle."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
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


def prompts(
    args: argparse.Namespace, hw: tuple[int, int]
) -> tuple[list[list[float]], list[int], list[float] | None]:
    """Points and labels (1 foreground, 0 background) and the box, in photo pixels, each checked to lie
    inside the photo."""
    pts, labels = [], []
    for text in args.point:
        pts.append(parse_floats(text, 2, "point"))
        check_point(*pts[-1], hw, f"--point {text}")
        labels.append(1)
    for text in args.neg_point:
        pts.append(parse_floats(text, 2, "neg-point"))
        check_point(*pts[-1], hw, f"--neg-point {text}")
        labels.append(0)
    box = None
    if args.box:
        box = parse_floats(args.box, 4, "box")
        check_box((box[0], box[1], box[2], box[3]), hw)
    if not pts and box is None:
        raise DataError("no prompt given. Fix: pass --point X,Y (repeatable) and/or --box x0,y0,x1,y1")
    return pts, labels, box


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..io.atomic import atomic_write
    from ..sam2.ort_image import OnnxImagePredictor
    from ..sam2.preprocess import load_image

    check_provider(args.provider)
    # deployment: a file this CPU's int8 kernels get wrong is refused (Int8Error names the fix)
    predictor = OnnxImagePredictor(args.onnx_dir, provider=args.provider, fp16=args.fp16, wrong_cpu="error")
    img = load_image(args.image)
    points, labels, box = prompts(args, img.shape[:2])
    # next to the bundle folder, never inside it (a bundle holds what export wrote, nothing else)
    suffixes = (".png", "_overlay.png")
    default = Path(args.onnx_dir).resolve().parent / f"{Path(args.image).stem}_mask"  # taken: _mask_2, ...
    prefix = Path(args.out) if args.out else free_prefix(default, suffixes)
    mask_path, over_path = output_files(prefix, suffixes)  # both free: before inference
    predictor.set_image(img)
    result = predictor.predict(points or None, labels or None, box)
    mask = result.best
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
        float(result.scores.max()),
        over_png,
    )
    if predictor.random_init:
        log.warning(
            "!!! bundle weights are RANDOM INIT (%s): the mask is not a segmentation !!!", predictor.weights
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
