"""``sam2-quant track``: follow objects through a clip with an exported bundle.

The bundle's image encoder, memory attention, memory encoder and (exported with ``--graphs sam_mask_decoder``)
mask decoder run on onnxruntime inside SAM 2's own video predictor
(:func:`sam2_quant_plugin.sam2.ort_video.onnx_video_predictor`); the prompt encoder and the small heads run in
torch from the bundle's float model. Each ``--point`` / ``--box`` on the first
frame is one object. Writes, into a fresh run folder, one label PNG per frame (0 background, object ``i`` as
``i``), one overlay JPEG per frame and ``track.json`` (area of every object on every frame, timing).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import check_box, check_point, check_positive, check_writable, parse_floats
from .common import add_nbits_accuracy_argument
from .ort_options import check_provider, check_threads

HELP = "track objects through a clip with a bundle's ONNX graphs (encoder + memory graphs on onnxruntime)"
log = logging.getLogger("sam2-quant.track")
PALETTE = np.array([[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211]], np.float32)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--onnx-dir",
        required=True,
        help="bundle from sam2-quant export --graphs memory_attention memory_encoder [sam_mask_decoder] "
        "(with sam_mask_decoder the mask decoder runs in onnxruntime too)",
    )
    p.add_argument("--video", default=None, help="folder of numbered JPEG frames (default: the bundled clip)")
    p.add_argument("--point", action="append", default=[], help="one object per point X,Y on the first frame")
    p.add_argument(
        "--box", action="append", default=[], help="one object per box x0,y0,x1,y1 on the first frame"
    )
    p.add_argument("--max-frames", type=int, default=None, help="track the first N frames only")
    p.add_argument("--checkpoint", default=None, help="checkpoint of the exported model (if it had one)")
    p.add_argument("--provider", default="cpu", choices=("cpu", "cuda"), help="onnxruntime EP")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (0: its default)")
    p.add_argument("--out", default="runs", help="parent folder; each run gets a fresh sub-folder")
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def _prompts(args: argparse.Namespace, hw: tuple[int, int]) -> list[dict[str, np.ndarray]]:
    objects = []
    for text in args.point:
        x, y = parse_floats(text, 2, "point")
        check_point(x, y, hw, f"--point {text}")
        objects.append({"points": np.array([[x, y]], np.float32), "labels": np.array([1], np.int32)})
    for text in args.box:
        box = parse_floats(text, 4, "box")
        check_box(box, hw)
        objects.append({"box": np.array(box, np.float32)})
    if not objects:
        raise DataError("no object given. Fix: pass --point X,Y and/or --box x0,y0,x1,y1 (one object each)")
    return objects


def _save(image: np.ndarray, fmt: str, path: Path) -> None:
    from PIL import Image

    Image.fromarray(image.astype(np.uint8)).save(path, fmt)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..io.atomic import atomic_write, atomic_write_json
    from ..io.bundle import read_manifest
    from ..io.staging import final_name, new_staged_run_dir, publish_run_dir
    from ..sam2.export import VIDEO_GRAPHS
    from ..sam2.ort_video import onnx_video_predictor
    from ..sam2.video import default_video_dir, first_frames, video_frames

    source = Path(args.video) if args.video else default_video_dir()
    if args.max_frames is not None:
        check_positive(args.max_frames, "--max-frames")
    check_threads(args.threads)
    check_provider(args.provider)
    frames = video_frames(source)  # a bad folder (or frame) is a named error before any model work
    with Image.open(frames[0]) as im:
        hw = (im.height, im.width)
    objects = _prompts(args, hw)
    manifest = read_manifest(args.onnx_dir)
    check_writable(args.out)  # --out a file, read-only, ...: named before the model is built
    on_ort = [g for g in VIDEO_GRAPHS if g in manifest["files"]]
    predictor = onnx_video_predictor(
        args.onnx_dir, checkpoint=args.checkpoint, provider=args.provider, threads=args.threads
    )
    run_dir = new_staged_run_dir(args.out, f"track_{source.name}")
    log.info("run folder: %s (appears when tracking is done)", final_name(run_dir))
    areas: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sam2_quant_track_") as tmp:
        clip = first_frames(source, args.max_frames, Path(tmp))
        state = predictor.init_state(str(clip))
        for obj_id, prompt in enumerate(objects, start=1):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, **prompt)
        names = [p.name for p in video_frames(clip)]
        start = time.perf_counter()
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
            masks = (logits[:, 0] > 0).cpu().numpy()
            labels = np.zeros(masks.shape[1:], np.uint8)
            for oid, m in zip(obj_ids, masks):
                labels[m] = oid
            areas[frame_idx] = [float(m.mean()) for m in masks]
            stem = Path(names[frame_idx]).stem
            with Image.open(clip / names[frame_idx]) as im:
                rgb = np.asarray(im.convert("RGB"), np.float32)
            for oid in obj_ids:
                sel = labels == oid
                rgb[sel] = 0.5 * rgb[sel] + 0.5 * PALETTE[(oid - 1) % len(PALETTE)]
            atomic_write(run_dir / "masks" / f"{stem}.png", partial(_save, labels, "PNG"))
            atomic_write(run_dir / "overlays" / f"{stem}.jpg", partial(_save, rgb.clip(0, 255), "JPEG"))
        seconds = time.perf_counter() - start
    record = {
        "bundle": str(args.onnx_dir),
        "video": str(source),
        "frames": len(areas),
        "objects": [{k: v.tolist() for k, v in o.items()} for o in objects],
        "area_fraction": {str(k): v for k, v in sorted(areas.items())},
        "seconds_per_frame": seconds / max(1, len(areas)),
        "provider": args.provider,
        "onnxruntime": ["image_encoder", *on_ort],
        "torch": [
            "prompt encoder",
            *([] if "sam_mask_decoder" in on_ort else ["mask decoder"]),
            "small heads",
        ],
        "random_init": bool(manifest["random_init"]),
        "weights": manifest["weights"],
    }
    atomic_write_json(run_dir / "track.json", record)
    run_dir = publish_run_dir(run_dir)
    log.info(
        "tracked %d object(s) over %d frame(s), %.2f s per frame: %s (masks/, overlays/, track.json)",
        len(objects),
        len(areas),
        record["seconds_per_frame"],
        run_dir,
    )
    if manifest["random_init"]:
        log.warning(
            "!!! bundle weights are RANDOM INIT (%s): the masks are not segmentations !!!",
            manifest["weights"],
        )
    return 0
