"""onnxruntime vs PyTorch: on real photos, feature cosine, max abs diff and mask IoU of decoded point grids
(:func:`pipeline_parity`); on a clip, the memory graphs inside SAM 2's video loop (:func:`video_parity`)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..eval.metrics import cosine, mask_iou, max_abs_diff
from ..onnx.parity import fmt_result
from ..onnx.runtime import make_session
from .forward import decode, encode, point_grid
from .preprocess import to_model_input

log = logging.getLogger(__name__)


def _run_encoder(sess, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [torch.from_numpy(o) for o in sess.run(None, {"image": x.numpy()})]


def _run_decoder(sess, feats: list[torch.Tensor], points: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Masks ``[P, 1, h, w]`` for ``P`` single-point prompts ``points [P, 2]``, one ORT call each."""
    out = []
    for pt in points:
        feed = {
            "image_embed": feats[0].numpy(),
            "high_res_feats_0": feats[1].numpy(),
            "high_res_feats_1": feats[2].numpy(),
            "point_coords": pt.reshape(1, 1, 2).numpy().astype(np.float32),
            "point_labels": np.ones((1, 1), dtype=np.int32),
        }
        out.append(torch.from_numpy(sess.run(None, feed)[0]))
    return torch.cat(out, 0)


def pipeline_parity(
    model: nn.Module,
    encoder_path: str | Path,
    decoder_path: str | Path | None,
    images: Sequence[np.ndarray],
    *,
    image_size: int,
    points_per_side: int = 4,
    provider: str = "cpu",
    optimization: str = "all",
    threads: int | None = None,
) -> dict[str, float | int | str]:
    """Compare ORT encoder (+ decoder) with ``model`` (float or fake-quant) on ``images``.

    Returns ``embed_cosine`` / ``embed_max_abs`` (worst over images and the three encoder outputs) and,
    with a decoder, ``mask_iou`` (mean over non-degenerate torch masks of a ``points_per_side``^2 point
    grid), ``mask_logit_cosine`` and ``n_masks`` / ``n_degenerate``.
    """
    enc = make_session(encoder_path, provider, threads, optimization=optimization)
    dec = make_session(decoder_path, provider, threads, optimization=optimization) if decoder_path else None
    grid = point_grid(points_per_side, image_size)
    cos, mad, ort_masks, pt_masks = [], [], [], []
    model = model.eval()
    for img in images:
        x = to_model_input([img], image_size)
        with torch.no_grad():
            ref = encode(model, x)
        ref_list = [ref["image_embed"], *ref["high_res_feats"]]
        got = _run_encoder(enc, x)
        cos += [cosine(a, b) for a, b in zip(got, ref_list)]
        mad += [max_abs_diff(a, b) for a, b in zip(got, ref_list)]
        if dec is not None:
            with torch.no_grad():
                pt = decode(model, ref, points=grid[:, None, :], labels=torch.ones(len(grid), 1))
            pt_masks.append(pt["low_res_masks"])
            ort_masks.append(_run_decoder(dec, got, grid))
    result: dict[str, float | int | str] = {
        "provider": enc.get_providers()[0],
        "optimization": optimization,
        "embed_cosine": min(cos),
        "embed_max_abs": max(mad),
        "n_images": len(images),
    }
    if dec is not None:
        a, b = torch.cat(ort_masks), torch.cat(pt_masks)
        iou = mask_iou(a, b)
        result.update(iou.to_dict())
        result["mask_logit_cosine"] = cosine(a, b)
        result["mask_logit_max_abs"] = max_abs_diff(a, b)
    log.info("parity (%s, %s): %s", result["provider"], optimization, fmt_result(result))
    return result


def video_parity(
    model: nn.Module,
    files: Mapping[str, Path],
    video_dir: str | Path,
    *,
    max_frames: int = 8,
    n_per_side: int = 2,
    provider: str = "cpu",
    optimization: str = "all",
    threads: int | None = None,
) -> dict[str, float | int | str]:
    """SAM 2's video loop with a bundle's video graphs in onnxruntime vs the same loop in torch.

    Both loops run ``model``'s own modules (fake-quant included) in SAM 2's video predictor; the
    onnxruntime one swaps memory attention, the memory encoder and the mask decoder (whichever ``files``
    holds) for drop-ins running those files (:mod:`.ort_modules`), so the check covers the graphs as the
    video loop calls them: object-pointer tokens, growing memory. ``n_per_side``^2 objects are prompted on
    frame 0 of the first ``max_frames`` frames. ``video_j``: mean per-frame mask IoU after the prompt frame.
    """
    from .ort_modules import VIDEO_DROP_INS, install_drop_ins
    from .video import first_frame_points, first_frames, propagate, sharing_video_predictor

    graphs = [g for g in VIDEO_DROP_INS if g in files]
    if not graphs:
        raise ValueError(f"no video graph among {sorted(files)}: nothing runs in the video loop")
    model = model.eval()
    with tempfile.TemporaryDirectory(prefix="sam2_quant_video_parity_") as tmp:
        clip = first_frames(video_dir, max_frames, Path(tmp))
        points, _ = first_frame_points(clip, n_per_side)
        ref = propagate(sharing_video_predictor(model), clip, points)
        vp = sharing_video_predictor(model)
        install_drop_ins(
            vp, {g: make_session(files[g], provider, threads, optimization=optimization) for g in graphs}
        )
        got = propagate(vp, clip, points)
    per_frame = [mask_iou(a, b) for a, b in zip(got, ref)]
    later = [r.mean_iou for r in per_frame[1:] if not np.isnan(r.mean_iou)]
    result: dict[str, float | int | str] = {
        "graphs": "+".join(graphs),
        "optimization": optimization,
        "video_j": float(np.mean(later)) if later else float("nan"),
        "worst_frame_iou": float(np.min(later)) if later else float("nan"),
        "n_frames": len(ref),
        "n_objects": len(points),
        "memory_attention_calls": getattr(vp.memory_attention, "calls", 0),
        "max_obj_ptr_tokens": getattr(vp.memory_attention, "max_obj_ptr_tokens", 0),
        "mask_decoder_calls": getattr(vp.sam_mask_decoder, "calls", 0),
    }
    log.info("video parity (%s): %s", optimization, fmt_result(result))
    return result
