"""Quantize SAM 2, export the QDQ ONNX pair, and segment a photo with plain onnxruntime calls.

    python examples/export_and_infer_onnx.py                        # 512 px, recipe w8a8
    python examples/export_and_infer_onnx.py --image-size 128 --out /tmp/x   # the smoke setting CI runs

After export, inference needs only onnxruntime and numpy: the SAM 2 preprocessing (resize to SxS,
/255, ImageNet mean/std) and the two sessions below. Without ``--checkpoint`` the weights are SEEDED
RANDOM INIT, so the mask shows the plumbing, not a segmentation.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import onnxruntime as ort
from PIL import Image

import sam2_quant_plugin as sq
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.sam2 import bundled_images, load_image
from sam2_quant_plugin.sam2.ort_image import OnnxImagePredictor

log = logging.getLogger("onnx_example")
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def preprocess(img: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 -> [1, 3, S, S] float32, as SAM 2 does (bilinear resize, ImageNet normalisation)."""
    x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    return ((x - MEAN) / STD).astype(np.float32).transpose(2, 0, 1)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--recipe", default="w8a8")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--out", default="runs/examples")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    size = args.image_size

    model = sq.build_sam2_model("sam2.1_hiera_t", args.checkpoint, image_size=size)
    qmodel = sq.prepare_qat(model, args.recipe)
    sq.calibrate(qmodel, image_size=size)
    bundle = new_run_dir(args.out, "onnx_example")
    manifest = export_bundle(sq.freeze(qmodel), bundle, image_size=size)
    log.info("exported %s: %s", bundle, manifest["bytes"])

    # --- from here on: onnxruntime + numpy only -------------------------------------------------
    opts = ort.SessionOptions()
    enc = ort.InferenceSession(str(bundle / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(bundle / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    img = load_image(bundled_images()[-1])  # truck.jpg
    h, w = img.shape[:2]
    embed, hr0, hr1 = enc.run(None, {"image": preprocess(img, size)})
    point = np.array([[[0.5 * size, 0.6 * size]]], dtype=np.float32)  # (x, y) in model-input pixels
    masks, iou = dec.run(
        None,
        {
            "image_embed": embed,
            "high_res_feats_0": hr0,
            "high_res_feats_1": hr1,
            "point_coords": point,
            "point_labels": np.ones((1, 1), dtype=np.int32),
        },
    )
    # SAM 2 upsamples the logits (bilinear) to the photo and thresholds them there, not the other way round
    logits = np.asarray(Image.fromarray(masks[0, 0].astype(np.float32)).resize((w, h), Image.BILINEAR))
    mask = (logits > 0).astype(np.uint8) * 255
    out = bundle / "truck_mask.png"
    Image.fromarray(mask).save(out)
    log.info(
        "mask %s covers %.1f%% of the photo (predicted IoU %.3f)", out, 100 * (mask > 0).mean(), iou[0, 0]
    )

    # --- the same with the package's predictor: SAM 2's own pre- and post-processing (sam2-quant infer) --
    predictor = OnnxImagePredictor(bundle)
    predictor.set_image(img)
    result = predictor.predict(points=[[0.5 * w, 0.6 * h]])  # photo pixels
    log.info(
        "OnnxImagePredictor: %.1f%% of the photo (predicted IoU %.3f)",
        100 * result.best.mean(),
        result.scores[0],
    )


if __name__ == "__main__":
    main()
