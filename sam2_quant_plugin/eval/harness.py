"""Image fidelity harness: a student's masks and features against the float teacher's, on the same prompts.

The teacher's outputs are computed once (:func:`build_reference`) and every student is scored against them
(:func:`score_student`). A student is either a SAM 2 model (float, prepared, frozen or converted, or a copy
whose ``image_encoder`` runs in onnxruntime: anything :func:`~sam2_quant_plugin.sam2.forward.encode` takes)
or a plain callable ``x [1, 3, S, S] -> {"image_embed", "high_res_feats"}``. A model student decodes with
its own prompt encoder and mask decoder (float unless its method quantized them); a callable student's
features go through the teacher's float decoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..sam2.forward import decode, encode, point_grid
from ..sam2.preprocess import to_model_input
from .metrics import cosine, mask_iou
from .prompts import boxes_from_teacher

log = logging.getLogger(__name__)

Features = dict[str, Tensor | list[Tensor]]
Student = nn.Module | Callable[[Tensor], Features]


@dataclass
class ImageReference:
    """The teacher's outputs on one image."""

    name: str
    x: Tensor
    feats: Features
    point_logits: Tensor
    boxes: Tensor
    box_source: str
    box_logits: Tensor


@dataclass
class Reference:
    """The teacher's outputs on an image set, and the prompts used."""

    image_size: int
    points_per_side: int
    seed: int
    images: list[ImageReference] = field(default_factory=list)

    @property
    def points(self) -> Tensor:
        return point_grid(self.points_per_side, self.image_size)[:, None, :]

    def describe(self) -> dict:
        return {
            "image_size": self.image_size,
            "images": [r.name for r in self.images],
            "point_prompts": f"{self.points_per_side}x{self.points_per_side} grid, one point per prompt",
            "box_prompts": {r.name: r.box_source for r in self.images},
            "seed": self.seed,
        }


def _decode_masks(model: nn.Module, feats: Features, points: Tensor | None, boxes: Tensor | None) -> Tensor:
    if points is not None:
        out = decode(model, feats, points=points, labels=torch.ones(points.shape[:2]))
    else:
        out = decode(model, feats, boxes=boxes)
    return out["low_res_masks"]


@torch.no_grad()
def build_reference(
    teacher: nn.Module,
    images: Sequence[np.ndarray],
    *,
    image_size: int,
    names: Sequence[str] | None = None,
    points_per_side: int = 8,
    max_boxes: int = 16,
    box_mode: str = "both",
    seed: int = 0,
    progress: bool = True,
) -> Reference:
    """Run the float teacher once over ``images`` (HxWx3 uint8): features, point and box masks."""
    names = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
    ref = Reference(image_size, points_per_side, seed)
    points = ref.points
    for name, img in tqdm(list(zip(names, images)), desc="teacher", disable=not progress, leave=False):
        x = to_model_input([img], image_size)
        feats = encode(teacher, x)
        p_logits = _decode_masks(teacher, feats, points, None)
        boxes, source = boxes_from_teacher(
            p_logits, image_size, max_boxes=max_boxes, seed=seed, mode=box_mode
        )
        b_logits = _decode_masks(teacher, feats, None, boxes)
        ref.images.append(ImageReference(name, x, feats, p_logits, boxes, source, b_logits))
    return ref


def _student_features(student: Student, x: Tensor) -> tuple[Features, nn.Module | None]:
    if isinstance(student, nn.Module) and hasattr(student, "forward_image"):
        return encode(student, x), student
    return student(x), None


def decoder_kind(student: Student) -> str:
    """Which mask decoder :func:`score_student` decodes ``student``'s features with: ``"onnxruntime"`` (an
    exported decoder file installed as a drop-in), ``"quantized"`` (the student's own, with quantized
    layers), or ``"float"`` (its float copy, or the teacher's for a callable student)."""
    if not (isinstance(student, nn.Module) and hasattr(student, "forward_image")):
        return "float"
    from ..api import quant_state_or_none
    from ..sam2.ort_modules import OrtMaskDecoder

    if isinstance(getattr(student, "sam_mask_decoder", None), OrtMaskDecoder):
        return "onnxruntime"
    state = quant_state_or_none(student)
    if state is not None and any(n.startswith("sam_mask_decoder.") for n in state.plans):
        return "quantized"
    return "float"


@torch.no_grad()
def score_student(
    ref: Reference, student: Student, teacher: nn.Module, *, name: str = "student", progress: bool = True
) -> dict:
    """Mask IoU (points, boxes) and feature cosines of ``student`` against the teacher outputs in ``ref``.

    Degenerate (empty or full) teacher masks are excluded from the IoU means; their share is reported.
    """
    points = ref.points
    s_pts, t_pts, s_box, t_box = [], [], [], []
    cos_embed, cos_hr = [], []
    for r in tqdm(ref.images, desc=name, disable=not progress, leave=False):
        feats, decoder = _student_features(student, r.x)
        decoder = decoder if decoder is not None else teacher
        cos_embed.append(cosine(feats["image_embed"], r.feats["image_embed"]))
        cos_hr.append(
            float(np.mean([cosine(a, b) for a, b in zip(feats["high_res_feats"], r.feats["high_res_feats"])]))
        )
        s_pts.append(_decode_masks(decoder, feats, points, None))
        t_pts.append(r.point_logits)
        s_box.append(_decode_masks(decoder, feats, None, r.boxes))
        t_box.append(r.box_logits)
    pts = mask_iou(torch.cat(s_pts), torch.cat(t_pts))
    box = mask_iou(torch.cat(s_box), torch.cat(t_box))
    return {
        "points": pts.to_dict(),
        "boxes": box.to_dict(),
        "embed_cosine": float(np.mean(cos_embed)),
        "high_res_cosine": float(np.mean(cos_hr)),
    }


def evaluate_images(
    teacher: nn.Module,
    student: Student,
    images: Sequence[np.ndarray],
    *,
    image_size: int,
    points_per_side: int = 8,
    max_boxes: int = 16,
    seed: int = 0,
) -> dict:
    """One-shot :func:`build_reference` + :func:`score_student` (for many students, build it once)."""
    ref = build_reference(
        teacher,
        images,
        image_size=image_size,
        points_per_side=points_per_side,
        max_boxes=max_boxes,
        seed=seed,
    )
    return score_student(ref, student, teacher)
