"""``nn.Module`` wrappers that give each SAM 2 deployment graph plain tensor inputs and outputs.

* :class:`ImageEncoderGraph`: ``image [1, 3, S, S] -> image_embed, high_res_feats_0, high_res_feats_1``,
  exactly :func:`sam2_quant_plugin.sam2.forward.encode`.
* :class:`DecoderGraph`: prompt encoder + mask decoder, ``image_embed, high_res_feats_0, high_res_feats_1,
  point_coords [1, N, 2], point_labels [1, N] -> low_res_masks, iou_predictions``, exactly
  :func:`~sam2_quant_plugin.sam2.forward.decode`. Boxes are two points with labels 2 and 3, padding
  points label -1, as SAM's prompt encoder defines.
* :class:`BackboneGraph`: ``image [1, 3, S, S] -> backbone_fpn_0..k``, the image encoder's raw FPN levels
  (what SAM 2's video predictor consumes; the positional encodings depend on shapes only).
* :class:`MemoryAttentionGraph`: ``current [HW, 1, C], current_pos, memory [M, 1, Cm], memory_pos,
  obj_ptrs [P, 1, Cm], obj_ptrs_pos -> conditioned [HW, 1, C]``: the spatial memories of ``M / HW``
  frames and ``P`` object-pointer tokens (``P`` may be 0), as SAM 2.1's video loop builds them (needs
  real-valued RoPE: :func:`sam2_quant_plugin.sam2.rope.patch_real_rope`).
* :class:`MaskDecoderGraph`: SAM 2's mask decoder as the video loop calls it, before it picks its outputs:
  ``image_embeddings, image_pe, sparse_prompt_embeddings [1, N, C] (N dynamic), dense_prompt_embeddings,
  high_res_feats_0, high_res_feats_1 -> masks [1, K, S/4, S/4], iou_pred, mask_tokens_out [1, K, C],
  object_score_logits`` for all ``K`` mask tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .forward import decode, encode

ENCODER_INPUTS = ("image",)
ENCODER_OUTPUTS = ("image_embed", "high_res_feats_0", "high_res_feats_1")
DECODER_INPUTS = ("image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions")
MEMORY_INPUTS = ("current", "current_pos", "memory", "memory_pos", "obj_ptrs", "obj_ptrs_pos")
MEMORY_OUTPUTS = ("conditioned",)
MEMORY_ENCODER_INPUTS = ("pix_feat", "mask_for_mem")
MEMORY_ENCODER_OUTPUTS = ("maskmem_features", "maskmem_pos_enc")
MASK_DECODER_INPUTS = (
    "image_embeddings",
    "image_pe",
    "sparse_prompt_embeddings",
    "dense_prompt_embeddings",
    "high_res_feats_0",
    "high_res_feats_1",
)
MASK_DECODER_OUTPUTS = ("masks", "iou_pred", "mask_tokens_out", "object_score_logits")


class ImageEncoderGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feats = encode(self.model, image)
        hr0, hr1 = feats["high_res_feats"]
        return feats["image_embed"], hr0, hr1


class BackboneGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.image_encoder(image)["backbone_fpn"])


class DecoderGraph(nn.Module):
    def __init__(self, model: nn.Module, multimask: bool = False) -> None:
        super().__init__()
        self.model = model
        self.multimask = multimask

    def forward(
        self, image_embed: Tensor, hr0: Tensor, hr1: Tensor, point_coords: Tensor, point_labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        feats = {"image_embed": image_embed, "high_res_feats": [hr0, hr1]}
        out = decode(self.model, feats, points=point_coords, labels=point_labels, multimask=self.multimask)
        return out["low_res_masks"], out["iou_predictions"]


class MemoryAttentionGraph(nn.Module):
    """Memory attention with the object-pointer tokens as their own inputs.

    SAM 2 concatenates ``P`` pointer tokens after the spatial memories and rotates (RoPE) only the spatial
    ones; the graph does the same with ``P`` read from ``obj_ptrs``' shape, so one file serves every
    frame of a video (any number of memory frames, any number of pointers, none included). Trace it with
    ``P > 0``: the tracer keeps the branch that splits off the pointer tokens, which is also exact at 0.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        current: Tensor,
        current_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        obj_ptrs: Tensor,
        obj_ptrs_pos: Tensor,
    ) -> Tensor:
        return self.model.memory_attention(
            curr=[current],
            curr_pos=[current_pos],
            memory=torch.cat([memory, obj_ptrs], dim=0),
            memory_pos=torch.cat([memory_pos, obj_ptrs_pos], dim=0),
            num_obj_ptr_tokens=obj_ptrs.shape[0],
        )


class MemoryEncoderGraph(nn.Module):
    """``pix_feat [1, C, S/16, S/16]``, ``mask_for_mem [1, 1, S, S]`` (the mask after SAM 2's sigmoid, scale
    and bias: what ``_encode_new_memory`` hands the memory encoder) -> ``maskmem_features``,
    ``maskmem_pos_enc``. The no-object embedding SAM 2 adds afterwards stays outside the graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pix_feat: Tensor, mask_for_mem: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        return out["vision_features"], out["vision_pos_enc"][0]


class MaskDecoderGraph(nn.Module):
    """``MaskDecoder.predict_masks`` for one prompt batch item (``repeat_image=False``): every mask token's
    mask, score and output token. Which of them SAM 2 uses (multimask or not, the stability fallback, the
    object-pointer token) is chosen outside the graph, per call (:class:`.ort_modules.OrtMaskDecoder`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        high_res_feats_0: Tensor,
        high_res_feats_1: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        masks, iou_pred, tokens, obj = self.model.sam_mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse_prompt_embeddings,
            dense_prompt_embeddings=dense_prompt_embeddings,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return masks, iou_pred, tokens, obj


def mask_decoder_example(model: nn.Module, image_size: int, n_tokens: int = 3) -> tuple[Tensor, ...]:
    """Random :data:`MASK_DECODER_INPUTS` (shapes only): ``n_tokens`` sparse prompt tokens."""
    d = model.sam_prompt_encoder.embed_dim
    s16, s8, s4 = image_size // 16, image_size // 8, image_size // 4
    dec = model.sam_mask_decoder
    return (
        torch.randn(1, d, s16, s16),
        torch.randn(1, d, s16, s16),
        torch.randn(1, n_tokens, d),
        torch.randn(1, d, s16, s16),
        torch.randn(1, dec.conv_s0.out_channels, s4, s4),
        torch.randn(1, dec.conv_s1.out_channels, s8, s8),
    )


def memory_encoder_example(model: nn.Module, image_size: int) -> tuple[Tensor, Tensor]:
    s16 = image_size // 16
    return torch.randn(1, model.hidden_dim, s16, s16), torch.rand(1, 1, image_size, image_size)


def encoder_example(image_size: int) -> tuple[Tensor]:
    return (torch.randn(1, 3, image_size, image_size),)


def decoder_example(model: nn.Module, image_size: int, n_points: int = 2) -> tuple[Tensor, ...]:
    """Zero features of the right shapes plus ``n_points`` foreground points (shapes only)."""
    d = model.sam_prompt_encoder.embed_dim
    s16, s8, s4 = image_size // 16, image_size // 8, image_size // 4
    hr0_c = model.sam_mask_decoder.conv_s0.out_channels
    hr1_c = model.sam_mask_decoder.conv_s1.out_channels
    coords = torch.rand(1, n_points, 2) * image_size
    return (
        torch.randn(1, d, s16, s16),
        torch.randn(1, hr0_c, s4, s4),
        torch.randn(1, hr1_c, s8, s8),
        coords,
        torch.ones(1, n_points, dtype=torch.int32),
    )


def memory_example(
    model: nn.Module, image_size: int, n_frames: int = 2, n_ptr_tokens: int = 8
) -> tuple[Tensor, ...]:
    """Random :data:`MEMORY_INPUTS`: ``n_frames`` spatial memories and ``n_ptr_tokens`` pointer tokens
    (SAM 2.1 tiny splits each 256-d object pointer into 4 tokens of its 64-d memory width)."""
    c = model.memory_attention.d_model
    cm = model.mem_dim
    hw = (image_size // 16) ** 2
    return (
        torch.randn(hw, 1, c),
        torch.randn(hw, 1, c),
        torch.randn(n_frames * hw, 1, cm),
        torch.randn(n_frames * hw, 1, cm),
        torch.randn(n_ptr_tokens, 1, cm),
        torch.randn(n_ptr_tokens, 1, cm),
    )
