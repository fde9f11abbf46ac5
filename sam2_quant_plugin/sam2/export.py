"""SAM 2's deployment graphs as :class:`~sam2_quant_plugin.models.GraphSpec` and one export function each.

``encoder``: ``image [1, 3, S, S] -> image_embed, high_res_feats_0, high_res_feats_1``; ``decoder``:
features + ``point_coords [1, N, 2]``, ``point_labels [1, N]`` (int32) -> ``low_res_masks``,
``iou_predictions`` (``N`` dynamic); ``backbone``: the raw FPN levels; ``memory_attention``: needs
real-valued RoPE (:func:`.rope.patch_real_rope`). Tracing and lowering are the generic
:func:`sam2_quant_plugin.onnx.export.export_graph`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from typing_extensions import Unpack

from ..errors import ExportError
from ..models.adapter import GraphSpec, Names
from ..onnx.export import ExportOptions, export_graph
from .graphs import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    MASK_DECODER_INPUTS,
    MASK_DECODER_OUTPUTS,
    MEMORY_ENCODER_INPUTS,
    MEMORY_ENCODER_OUTPUTS,
    MEMORY_INPUTS,
    MEMORY_OUTPUTS,
    BackboneGraph,
    DecoderGraph,
    ImageEncoderGraph,
    MaskDecoderGraph,
    MemoryAttentionGraph,
    MemoryEncoderGraph,
    decoder_example,
    encoder_example,
    mask_decoder_example,
    memory_encoder_example,
    memory_example,
)
from .rope import RealRoPEAttention, patch_real_rope

DECODER_ROOTS = ("sam_mask_decoder", "sam_prompt_encoder")


def encoder_spec(image_size: int) -> GraphSpec:
    return GraphSpec(
        ImageEncoderGraph,
        lambda _: encoder_example(image_size),
        (ENCODER_INPUTS, ENCODER_OUTPUTS),
        ("image_encoder",),
    )


def _backbone_names(wrapper: nn.Module, example: tuple[torch.Tensor, ...]) -> Names:
    with torch.no_grad():
        n_out = len(wrapper(*example))
    return ENCODER_INPUTS, tuple(f"backbone_fpn_{i}" for i in range(n_out))


def backbone_spec(image_size: int) -> GraphSpec:
    return GraphSpec(
        BackboneGraph, lambda _: encoder_example(image_size), _backbone_names, ("image_encoder",)
    )


def decoder_spec(image_size: int, multimask: bool = False) -> GraphSpec:
    return GraphSpec(
        lambda m: DecoderGraph(m, multimask),
        lambda m: decoder_example(m, image_size),
        (DECODER_INPUTS, DECODER_OUTPUTS),
        DECODER_ROOTS,
        {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
    )


def _check_real_rope(model: nn.Module) -> None:
    if not any(isinstance(m, RealRoPEAttention) for m in model.get_submodule("memory_attention").modules()):
        raise ExportError(
            "memory attention uses complex-valued RoPE, which does not export. Fix: call "
            "sam2_quant_plugin.sam2.rope.patch_real_rope(model) first."
        )


def memory_attention_spec(image_size: int, n_frames: int = 2) -> GraphSpec:
    return GraphSpec(
        MemoryAttentionGraph,
        lambda m: memory_example(m, image_size, n_frames),
        (MEMORY_INPUTS, MEMORY_OUTPUTS),
        ("memory_attention",),
        {
            "memory": {0: "memory_tokens"},
            "memory_pos": {0: "memory_tokens"},
            "obj_ptrs": {0: "obj_ptr_tokens"},
            "obj_ptrs_pos": {0: "obj_ptr_tokens"},
        },
        check=_check_real_rope,
    )


def memory_encoder_spec(image_size: int) -> GraphSpec:
    return GraphSpec(
        MemoryEncoderGraph,
        lambda m: memory_encoder_example(m, image_size),
        (MEMORY_ENCODER_INPUTS, MEMORY_ENCODER_OUTPUTS),
        ("memory_encoder",),
    )


def mask_decoder_spec(image_size: int) -> GraphSpec:
    return GraphSpec(
        MaskDecoderGraph,
        lambda m: mask_decoder_example(m, image_size),
        (MASK_DECODER_INPUTS, MASK_DECODER_OUTPUTS),
        ("sam_mask_decoder",),
        {"sparse_prompt_embeddings": {1: "prompt_tokens"}},
    )


#: the memory graphs: a bundle adds them when its recipe quantizes their module (or on request)
MEMORY_GRAPHS = ("memory_attention", "memory_encoder")
#: graphs a bundle holds on request, beside ``encoder`` and ``decoder``, by file stem = the ``SAM2Base``
#: module each runs in the video loop (``sam_mask_decoder``: the video loop's interface to the mask decoder)
VIDEO_GRAPHS = (*MEMORY_GRAPHS, "sam_mask_decoder")


def _memory_attention_real_rope(model: nn.Module) -> nn.Module:
    patch_real_rope(model)  # the export's own frozen CPU copy: the caller's model keeps its RoPE
    return MemoryAttentionGraph(model)


def bundle_memory_specs(image_size: int, names: Sequence[str]) -> dict[str, GraphSpec]:
    """The video graphs a bundle was asked for (:data:`VIDEO_GRAPHS`); memory attention is traced with
    real-valued RoPE patched into the export's copy, so the caller need not patch its model."""
    unknown = [n for n in names if n not in VIDEO_GRAPHS]
    if unknown:
        raise ExportError(f"unknown graph(s) {unknown}; a bundle can add {VIDEO_GRAPHS} to encoder + decoder")
    specs = {
        "memory_attention": lambda: replace(
            memory_attention_spec(image_size), wrap=_memory_attention_real_rope, check=None
        ),
        "memory_encoder": lambda: memory_encoder_spec(image_size),
        "sam_mask_decoder": lambda: mask_decoder_spec(image_size),
    }
    return {name: specs[name]() for name in names}


def export_image_encoder(
    model: nn.Module, path: str | Path, *, image_size: int, **options: Unpack[ExportOptions]
) -> Path:
    """Export ``image [1, 3, S, S] -> image_embed, high_res_feats_0, high_res_feats_1`` to ``path``.

    ``options``: ``opset``, ``weight_format``, ``target_cpu``, ``nbits_widths`` (see
    :func:`~sam2_quant_plugin.onnx.export.export_graph`), the same for every graph below.
    """
    return export_graph(model, path, encoder_spec(image_size), **options)


def export_backbone(
    model: nn.Module, path: str | Path, *, image_size: int, **options: Unpack[ExportOptions]
) -> Path:
    """Export ``image [1, 3, S, S] -> backbone_fpn_0..k`` (the image encoder's raw FPN levels) to ``path``."""
    return export_graph(model, path, backbone_spec(image_size), **options)


def export_decoder(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    multimask: bool = False,
    **options: Unpack[ExportOptions],
) -> Path:
    """Export prompt encoder + mask decoder: features + ``point_coords [1, N, 2]``, ``point_labels [1, N]``
    (int32) -> ``low_res_masks [1, M, S/4, S/4]``, ``iou_predictions [1, M]``; ``N`` is dynamic."""
    return export_graph(model, path, decoder_spec(image_size, multimask), **options)


def export_memory_attention(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    n_frames: int = 2,
    **options: Unpack[ExportOptions],
) -> Path:
    """Export memory attention (real-valued RoPE required: ``patch_real_rope(model)`` first).

    ``current [HW, 1, C]``, ``current_pos``, ``memory [M, 1, Cm]``, ``memory_pos``, ``obj_ptrs [P, 1, Cm]``,
    ``obj_ptrs_pos`` -> ``conditioned``; ``M`` (spatial memory tokens) is dynamic in multiples of ``HW``,
    ``P`` (object-pointer tokens, not rotated) is dynamic from 0 up.
    """
    return export_graph(model, path, memory_attention_spec(image_size, n_frames), **options)


def export_memory_encoder(
    model: nn.Module, path: str | Path, *, image_size: int, **options: Unpack[ExportOptions]
) -> Path:
    """Export the memory encoder: ``pix_feat [1, C, S/16, S/16]``, ``mask_for_mem [1, 1, S, S]`` ->
    ``maskmem_features``, ``maskmem_pos_enc`` (see :class:`.graphs.MemoryEncoderGraph`)."""
    return export_graph(model, path, memory_encoder_spec(image_size), **options)
