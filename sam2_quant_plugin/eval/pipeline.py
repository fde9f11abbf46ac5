"""``run_eval``: teacher reference once, every method through the harness, a report in a fresh run folder."""

from __future__ import annotations

import logging
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from ..int8.host import host_int8_path
from ..io.images import bundled_images, list_images, load_image
from ..io.staging import discard_staged, final_name, new_staged_run_dir, publish_run_dir
from ..models.info import model_info
from ..sam2.forward import model_image_size
from .baselines.base import BuildContext
from .baselines.registry import DEFAULT_METHODS, make_methods
from .harness import build_reference
from .report import write_report
from .runner import run_methods
from .video import build_video_reference

log = logging.getLogger(__name__)


def host_description() -> str:
    """Machine, CPU with its int8 path (every figure depends on it), torch and onnxruntime versions."""
    eps = ",".join(p.replace("ExecutionProvider", "") for p in ort.get_available_providers())
    return (
        f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {host_int8_path().describe()}"
        + f", torch {torch.__version__} (threads={torch.get_num_threads()})"
        + f", onnxruntime {ort.__version__} [{eps}]"
    )


def run_eval(
    teacher: nn.Module,
    *,
    out: str | Path = "runs/eval",
    methods: Sequence[str] = DEFAULT_METHODS,
    recipes: Sequence[str] = (),
    images: str | Path | None = None,
    calib_images: str | Path | None = None,
    calib_video: str | Path | None = None,
    video: str | Path | bool | None = None,
    max_frames: int | None = 8,
    points_per_side: int = 8,
    max_boxes: int = 16,
    box_mode: str = "both",
    seed: int = 0,
    timing: bool = True,
    time_repeats: int = 3,
    keep_artifacts: bool = False,
    command: str = "(python API)",
) -> tuple[dict, dict[str, Path]]:
    """Evaluate ``methods`` (names, plus ``NAME=PATH`` recipe files) against ``teacher``; write the report.

    ``images``: the photos scored (default: the bundled photos); ``calib_images``: the photos every
    data-aware method calibrates on (default: the bundled photos); ``calib_video``: the clip methods with
    memory-path layers calibrate on (default: the bundled clip). Rows scored on photos they were
    calibrated on are in-sample: ``results["in_sample"]`` says so and the report marks it.
    ``video``: a JPEG frame folder, None for the bundled clip, False to skip video; its first
    ``max_frames`` frames are used (None: all).
    The encoder ONNX files (``<run>/artifacts``, ~100 MiB float + ~30 MiB per ONNX row) are deleted at the
    end unless ``keep_artifacts``. Returns ``(results, paths)``; the run folder is ``paths["json"].parent``.
    """
    image_size = model_image_size(teacher)
    paths = list_images(images) if images else bundled_images()
    arrays = [load_image(p) for p in paths]
    calib_paths = list_images(calib_images) if calib_images else bundled_images()
    calib_arrays = [load_image(p) for p in calib_paths]
    overlap = sorted({p.resolve() for p in paths} & {p.resolve() for p in calib_paths})
    method_objs = make_methods(list(methods), list(recipes))
    config = model_info(teacher).config or "sam2"
    run_dir = new_staged_run_dir(out, f"eval_{config}_{image_size}")  # renamed into place when done
    log.info(
        "run folder %s: %d methods, %d images, %d px",
        final_name(run_dir),
        len(method_objs),
        len(arrays),
        image_size,
    )
    try:
        ref = build_reference(
            teacher,
            arrays,
            image_size=image_size,
            names=[p.name for p in paths],
            points_per_side=points_per_side,
            max_boxes=max_boxes,
            box_mode=box_mode,
            seed=seed,
        )
        calib_clip = Path(calib_video) if calib_video is not None else None
        ctx = BuildContext(
            teacher, calib_arrays, image_size, run_dir / "artifacts", seed=seed, calib_video=calib_clip
        )
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        video_ref = (  # a frame subset is linked under artifacts/, so nothing is left in /tmp
            None
            if video is False
            else build_video_reference(teacher, video or None, max_frames=max_frames, work_dir=ctx.work_dir)
        )
        rows = run_methods(ctx, method_objs, ref, video_ref, time_repeats=time_repeats, timing=timing)
        desc = ref.describe()
        results = {
            "weights": model_info(teacher).weights,
            "config": config,
            "image_size": image_size,
            "images": [str(p) for p in paths],
            "calibration_images": [str(p) for p in calib_paths],
            "calibration_video": str(calib_video) if calib_video else "bundled clip (memory-path rows)",
            "in_sample": bool(overlap),
            "in_sample_images": [str(p) for p in overlap],
            "video": video_ref.describe() if video_ref else {"video": "not run"},
            "video_in_sample": video_ref is not None and _clip_overlap(calib_video, video_ref.video_dir),
            "prompts": {k: desc[k] for k in ("point_prompts", "box_prompts")},
            "seed": seed,
            "host": host_description(),
            "timing_note": (
                f"Timings: median of {time_repeats} runs on a shared CPU; treat ratios as rough."
                if timing
                else "Timing skipped (--no-timing)."
            ),
            "command": command,
            "rows": rows,
        }
        kept = str(final_name(run_dir) / "artifacts")
        results["artifacts"] = kept if keep_artifacts else "deleted (keep with --keep-artifacts)"
        paths = write_report(results, run_dir)
        if not keep_artifacts:
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
        final = publish_run_dir(run_dir)
        paths = {k: final / p.relative_to(run_dir) for k, p in paths.items()}
    except BaseException:
        discard_staged()
        raise
    return results, paths


def _clip_overlap(calib_video: str | Path | None, scored: Path) -> bool:
    """Whether any scored frame (by content) is a frame the memory-path rows calibrated on."""
    from ..io.photos import sha256
    from ..sam2.video import default_video_dir, video_frames

    calib = {sha256(p) for p in video_frames(calib_video or default_video_dir())}
    return any(sha256(p) in calib for p in video_frames(scored))
