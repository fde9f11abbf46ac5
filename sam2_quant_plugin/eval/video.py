"""Video fidelity: a student's ``SAM2VideoPredictor`` propagation against the float teacher's.

Both predictors are built from the same config and image size and hold the teacher's float weights; the
student's predictor then takes the student's top-level modules (``image_encoder``, and any other component
its method quantized) as they are, so fake-quant modules, hooks, converted int8 layers and onnxruntime
encoders all run inside SAM 2's own video code. From first-frame point prompts (one object per point of a
small grid), both propagate over the frame folder; per frame the student's masks are scored against the
teacher's (degenerate teacher masks excluded), and the mean over frames is the J-like score.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from ..models.info import model_info, set_model_info
from ..sam2.video import blank_video_predictor, propagate
from ..sam2.video import default_video_dir as default_video_dir
from ..sam2.video import first_frame_points as first_frame_points
from ..sam2.video import first_frames as first_frames
from .metrics import mask_iou

log = logging.getLogger(__name__)


def make_video_predictor(teacher: nn.Module, student: nn.Module | None = None) -> nn.Module:
    """A ``SAM2VideoPredictor`` with ``teacher``'s float weights, and ``student``'s modules if given.

    ``teacher`` comes from :func:`~sam2_quant_plugin.sam2.build.build_sam2_model` (its config and image
    size are read from it). Every top-level child module of ``student`` replaces the predictor's (shared,
    not copied): quantized components bring their quantizers, float ones equal the teacher's.
    """
    vp = blank_video_predictor(teacher)
    vp.load_state_dict(teacher.state_dict(), strict=True)
    set_model_info(vp, model_info(teacher))
    if student is not None:
        for name, child in student.named_children():
            setattr(vp, name, child)
    return vp.eval()


@dataclass
class VideoReference:
    video_dir: Path
    points: np.ndarray
    logits: list[Tensor]  # per frame [n_obj, 1, H, W]
    source: str = (
        ""  # the folder the frames come from (video_dir may be a folder of links to its first frames)
    )

    def describe(self) -> dict:
        return {
            "video": self.source or str(self.video_dir),
            "frames": len(self.logits),
            "prompt": f"{len(self.points)} objects, one positive point each on frame 0 (grid)",
        }


def build_video_reference(
    teacher: nn.Module,
    video_dir: str | Path | None = None,
    *,
    n_per_side: int = 1,
    max_frames: int | None = None,
    work_dir: Path | None = None,
) -> VideoReference:
    source = Path(video_dir if video_dir is not None else default_video_dir())
    video_dir = first_frames(source, max_frames, work_dir)
    points, _ = first_frame_points(video_dir, n_per_side)
    logits = propagate(make_video_predictor(teacher), video_dir, points)
    return VideoReference(video_dir, points, logits, str(source))


def score_video(ref: VideoReference, teacher: nn.Module, student: nn.Module) -> dict:
    """Per-frame mask IoU of the student's propagation vs the teacher's, their mean (J-like)."""
    logits = propagate(make_video_predictor(teacher, student), ref.video_dir, ref.points)
    per_frame = [mask_iou(s, t) for s, t in zip(logits, ref.logits)]
    ious = [r.mean_iou for r in per_frame]
    finite = [v for v in ious if not math.isnan(v)]
    later = [v for v in ious[1:] if not math.isnan(v)]
    return {
        "j_mean": float(np.mean(finite)) if finite else float("nan"),
        "j_mean_after_prompt_frame": float(np.mean(later)) if later else float("nan"),
        "per_frame_iou": ious,
        "n_degenerate": sum(r.n_degenerate for r in per_frame),
        "n_masks": sum(r.n_masks for r in per_frame),
    }


def evaluate_video(
    teacher: nn.Module, student: nn.Module, video_dir: str | Path | None = None, *, n_per_side: int = 1
) -> dict:
    """One-shot :func:`build_video_reference` + :func:`score_video`."""
    return score_video(build_video_reference(teacher, video_dir, n_per_side=n_per_side), teacher, student)
