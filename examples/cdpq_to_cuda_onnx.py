"""Search per-layer bits under a file-size budget with CDPQ, then export the result for onnxruntime CUDA.

    python examples/cdpq_to_cuda_onnx.py                                   # 256 px search, 14 MB budget
    python examples/cdpq_to_cuda_onnx.py --image-size 128 --out /tmp/x     # the smoke setting CI runs

Steps: CDPQ (8 -> 4 bit ladder, probe order, budget in MB as the ONNX file stores the weights, one weight
scale per 32 inputs of each Linear: MatMulNBits' block layout, free in that format) writes a recipe;
the recipe is loaded by the core like any other; the bundle is exported the CUDA way (every Linear a
MatMulNBits, plus fp16 graphs) and checked on whatever onnxruntime EP is here. Without ``--checkpoint``
the weights are SEEDED RANDOM INIT: the numbers show the mechanics, not segmentation quality.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import onnxruntime as ort

import sam2_quant_plugin as sq
from sam2_quant_plugin.cdpq import CDPQConfig, run_cdpq
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.sam2 import bundled_images, load_image
from sam2_quant_plugin.sam2.parity import pipeline_parity

log = logging.getLogger("cdpq_example")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--target-mb", type=float, default=14.0, help="weight megabytes, as stored in ONNX")
    ap.add_argument("--group-size", type=int, default=32, help="0: one weight scale per output channel")
    ap.add_argument("--out", default="runs/examples")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = new_run_dir(args.out, "cdpq_example")

    # 1. the search: a recipe whose weights fit the budget, chosen by measured loss per byte saved
    cfg = CDPQConfig(
        name="example",
        teacher_checkpoint=args.checkpoint,
        image_size=args.image_size,
        ladder=(8, 4),
        order_by="probe",
        target_bytes=args.target_mb * 1e6,
        storage="onnx",
        group_size=args.group_size or None,
        rounds=0,
    )
    summary = run_cdpq(cfg, out, progress=False)
    recipe_path = Path(summary["run_dir"]) / "recipe.yaml"
    log.info("CDPQ: %s bits per layer -> %s", summary["bit_histogram"], recipe_path)

    # 2. the core loads the searched recipe like a shipped one
    model = sq.build_sam2_model("sam2.1_hiera_t", args.checkpoint, image_size=args.image_size)
    qmodel = sq.prepare_qat(model, sq.load_recipe(recipe_path))
    sq.calibrate(qmodel, image_size=args.image_size)
    frozen = sq.freeze(qmodel)

    # 3. the CUDA form: MatMulNBits weights, fp16 graphs beside the float32 ones
    bundle = out / "onnx"
    manifest = export_bundle(
        frozen, bundle, image_size=args.image_size, weight_format="matmulnbits", fp16=True
    )
    log.info("exported %s: %s", bundle, manifest["bytes"])

    # 4. parity of the fp16 graphs against the PyTorch model, on this machine's onnxruntime
    photos = [load_image(p) for p in bundled_images()]
    provider = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    r = pipeline_parity(
        frozen,
        bundle / "encoder_fp16.onnx",
        bundle / "decoder_fp16.onnx",
        photos[:1],
        image_size=args.image_size,
        points_per_side=3,
        provider=provider,
    )
    log.info(
        "fp16 ONNX (%s EP) vs PyTorch: embed cosine %.6f, mask IoU %.4f",
        provider,
        r["embed_cosine"],
        r["mask_iou"],
    )


if __name__ == "__main__":
    main()
