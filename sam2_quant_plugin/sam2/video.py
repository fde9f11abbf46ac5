"""SAM 2's video path for calibration: a ``SAM2VideoPredictor`` that shares a model's modules, point prompts
on the first frame, and propagation over a frame folder (what memory attention and the memory encoder see)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..device import model_device
from ..io.images import bundled_video_frames
from ..io.images import video_frames as video_frames
from ..models.info import model_info
from .build import build_sam2_model
from .forward import model_image_size

log = logging.getLogger(__name__)
#: module prefixes only the video path runs (quantized layers there need video calibration)
VIDEO_ROOTS = ("memory_attention", "memory_encoder", "obj_ptr_proj", "obj_ptr_tpos_proj", "mask_downsample")


def runs_video(names: Iterable[str]) -> bool:
    """Whether any of these module names (layer plans, CDPQ targets) lies on the path only video runs."""
    return any(n.startswith(VIDEO_ROOTS) for n in names)


def first_frames(video_dir: str | Path, max_frames: int | None, work_dir: Path | None = None) -> Path:
    """``video_dir``, or a folder linking its first ``max_frames`` JPEG frames (in frame order).

    The folder is created in ``work_dir`` (which the caller removes) or, without one, in the system
    temporary folder (then the caller must remove it).
    """
    frames = video_frames(video_dir)
    if max_frames is None or len(frames) <= max_frames:
        return Path(video_dir)
    tmp = Path(tempfile.mkdtemp(prefix="sam2_quant_frames_", dir=work_dir))
    for f in frames[:max_frames]:
        (tmp / f.name).symlink_to(f.resolve())
    log.info("video: first %d of %d frames of %s", max_frames, len(frames), video_dir)
    return tmp


def first_frame_points(video_dir: str | Path, n_per_side: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """``n*n`` (x, y) points at grid-cell centres of the first frame, in its pixels; and its (H, W)."""
    first = video_frames(video_dir)[0]
    with Image.open(first) as im:
        w, h = im.size
    offs = (np.arange(n_per_side) + 0.5) / n_per_side
    pts = np.array([[x * w, y * h] for y in offs for x in offs], dtype=np.float32)
    return pts, (h, w)


@torch.no_grad()
def propagate(predictor: nn.Module, video_dir: str | Path, points: np.ndarray) -> list[Tensor]:
    """Mask logits per frame ``[n_obj, 1, H, W]`` (video resolution) from one point per object on frame 0."""
    state = predictor.init_state(str(video_dir))
    for obj_id, pt in enumerate(points):
        predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=obj_id, points=pt[None], labels=np.array([1], dtype=np.int32)
        )
    out: dict[int, Tensor] = {}
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        out[frame_idx] = logits.detach().float().cpu()
    return [out[i] for i in sorted(out)]


def default_video_dir() -> Path:
    """The bundled 8-frame 'bedroom' clip."""
    return bundled_video_frames()[0].parent


def blank_video_predictor(model: nn.Module) -> nn.Module:
    """A randomly initialised ``SAM2VideoPredictor`` of ``model``'s config, size and device, built quietly
    (the caller replaces its weights, so the random-init warning would only mislead)."""
    config = model_info(model).config or "sam2.1_hiera_t"
    build_log = logging.getLogger("sam2_quant_plugin.sam2.build")
    level = build_log.level
    build_log.setLevel(logging.ERROR)
    try:
        size, device = model_image_size(model), model_device(model)
        return build_sam2_model(config, None, image_size=size, video=True, device=device)
    finally:
        build_log.setLevel(level)


def sharing_video_predictor(model: nn.Module) -> nn.Module:
    """A ``SAM2VideoPredictor`` of ``model``'s config and size whose top-level modules *are* ``model``'s (a
    prepared model's quantizers run inside SAM 2's own video code), with its direct parameters copied."""
    vp = blank_video_predictor(model)
    own = {k: v for k, v in model.state_dict().items() if "." not in k}  # SAM2Base's own tensors
    vp.load_state_dict(own, strict=False)
    for name, child in model.named_children():
        setattr(vp, name, child)
    return vp.eval()


def video_forward_loop(
    video_dir: str | Path | None = None, *, n_per_side: int = 2
) -> Callable[[nn.Module], None]:
    """Calibration over a frame folder (default: the bundled 8-frame clip): ``n_per_side``^2 objects
    prompted on frame 0 and propagated, so memory attention and the memory encoder see real memories."""
    folder = Path(video_dir) if video_dir is not None else default_video_dir()
    video_frames(folder)  # a bad folder fails here, before any model work

    def loop(model: nn.Module) -> None:
        points, _ = first_frame_points(folder, n_per_side)
        propagate(sharing_video_predictor(model), folder, points)
        log.info("video calibration: %d object(s) propagated over %s", len(points), folder)

    return loop
