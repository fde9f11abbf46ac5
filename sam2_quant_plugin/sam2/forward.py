"""Tensor-level encode/decode helpers that reproduce ``SAM2ImagePredictor`` without numpy round trips.

Used by calibration, distillation and evaluation. Neither function disables autograd: wrap calls in
``torch.no_grad()`` when gradients are not needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..device import model_device
from ..models.info import model_info


def model_image_size(model: torch.nn.Module) -> int:
    """The input size ``model`` takes: the one :func:`~.build.build_sam2_model` set, else SAM 2's own."""
    size = model_info(model).image_size
    if size is None:
        size = getattr(model, "image_size", None)
    if size is None:
        raise ValueError(f"{type(model).__name__} has no image_size: not a SAM 2 model")
    return int(size)


def encode(model: torch.nn.Module, x: Tensor) -> dict[str, Tensor | list[Tensor]]:
    """Image features of ``x [B, 3, S, S]`` exactly as ``SAM2ImagePredictor.set_image(_batch)`` builds them.

    Returns ``{"image_embed": [B, 256, S/16, S/16], "high_res_feats": [feat_s0, feat_s1]}`` with
    ``feat_s0 [B, 32, S/4, S/4]`` and ``feat_s1 [B, 64, S/8, S/8]``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"encode expects a [B, 3, S, S] tensor, got {tuple(x.shape)}; fix: use to_model_input()."
        )
    batch = x.shape[0]
    backbone_out = model.forward_image(x.to(model_device(model)))  # inputs follow the model's device
    _, vision_feats, _, feat_sizes = model._prepare_backbone_features(backbone_out)
    if model.directly_add_no_mem_embed:
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    # vision_feats are [HW, B, C]; the predictor turns them into [B, C, H, W].
    feats = [feat.permute(1, 2, 0).reshape(batch, -1, *size) for feat, size in zip(vision_feats, feat_sizes)]
    return {"image_embed": feats[-1], "high_res_feats": feats[:-1]}


def point_grid(n_per_side: int, image_size: int) -> Tensor:
    """``[n*n, 2]`` (x, y) points at the cell centres of an ``n x n`` grid, in model-input pixels.

    Same layout as ``sam2.utils.amg.build_point_grid`` (x varies fastest), scaled by ``image_size``.
    """
    if n_per_side < 1:
        raise ValueError(f"n_per_side must be >= 1, got {n_per_side}; fix: pass e.g. 4 or 8.")
    offset = 1.0 / (2 * n_per_side)
    side = torch.linspace(offset, 1.0 - offset, n_per_side, dtype=torch.float64)
    ys, xs = torch.meshgrid(side, side, indexing="ij")
    return (torch.stack([xs, ys], dim=-1).reshape(-1, 2) * image_size).float()


def _prompt_batch(points: Tensor | None, boxes: Tensor | None) -> int:
    if points is not None:
        return points.shape[0]
    if boxes is not None:
        return boxes.shape[0]
    raise ValueError(
        "decode needs points or boxes; fix: pass points [B, N, 2] with labels [B, N], or boxes [B, 4]."
    )


def decode(
    model: torch.nn.Module,
    feats: dict[str, Tensor | list[Tensor]],
    points: Tensor | None = None,
    labels: Tensor | None = None,
    boxes: Tensor | None = None,
    multimask: bool = False,
) -> dict[str, Tensor]:
    """Decode ``B`` prompts against image features, as ``SAM2ImagePredictor._predict`` does.

    ``points [B, N, 2]`` (x, y) and ``boxes [B, 4]`` (x0, y0, x1, y1) are in model-input pixels (what the
    predictor calls unnormalised coords: 0..S); ``labels [B, N]``: 1 foreground, 0 background. ``feats``
    comes from ``encode``: with batch 1 all ``B`` prompts go to that one image (its features are expanded),
    with batch ``B`` prompt ``i`` goes to image ``i``.

    Returns ``low_res_masks [B, M, S/4, S/4]`` logits (not clamped; the predictor clamps to +-32),
    ``iou_predictions [B, M]`` and ``object_score_logits [B, 1]``; ``M`` is 3 with ``multimask``, else 1.
    """
    batch = _prompt_batch(points, boxes)
    if points is not None and (labels is None or labels.shape != points.shape[:2]):
        raise ValueError(
            "decode needs labels [B, N] matching points [B, N, 2]; fix: pass 1 (fg) / 0 (bg) labels."
        )
    device = model_device(model)  # features and prompts follow the model (ORT features come on the CPU)
    image_embed = feats["image_embed"].to(device)
    high_res = [f.to(device) for f in feats["high_res_feats"]]
    n_img = image_embed.shape[0]
    if n_img == 1 and batch > 1:
        image_embed = image_embed.expand(batch, -1, -1, -1)
        high_res = [f.expand(batch, -1, -1, -1) for f in high_res]
    elif n_img != batch:
        raise ValueError(
            f"features hold {n_img} images but {batch} prompts were given; fix: give one prompt per image "
            "or encode a single image."
        )

    coords = None
    if points is not None:
        points = points.to(device)
        coords = (points.float(), labels.to(device=device, dtype=torch.int))
    if boxes is not None:
        boxes = boxes.to(device)
        box_coords = boxes.float().reshape(-1, 2, 2)
        box_labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device).repeat(boxes.shape[0], 1)
        if coords is None:
            coords = (box_coords, box_labels)
        else:
            coords = (torch.cat([box_coords, coords[0]], dim=1), torch.cat([box_labels, coords[1]], dim=1))

    sparse, dense = model.sam_prompt_encoder(points=coords, boxes=None, masks=None)
    low_res_masks, iou_predictions, _, object_score_logits = model.sam_mask_decoder(
        image_embeddings=image_embed,
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=False,
        high_res_features=high_res,
    )
    return {
        "low_res_masks": low_res_masks,
        "iou_predictions": iou_predictions,
        "object_score_logits": object_score_logits,
    }
