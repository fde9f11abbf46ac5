"""Drop-in ``nn.Module`` s that run SAM 2's exported graphs in onnxruntime inside SAM 2's own Python code.

Each takes the call its torch module takes in ``SAM2Base`` / ``SAM2VideoPredictor`` and returns what that
module returns, so a model whose ``image_encoder``, ``memory_attention`` and ``memory_encoder`` are
replaced by these propagates a video with every heavy graph on onnxruntime (the prompt encoder and the
small projections stay torch). Batches larger than one (several objects at once) run the graph once per
item: the files are exported for batch 1. Each takes ``(session, replaced)``: the module it stands in for
(used by :class:`OrtMaskDecoder` for its output selection, never changed).

* :class:`OrtImageEncoder`: the backbone graph (``image -> backbone_fpn_0..k``); positional encodings,
  which depend on shapes only, are recomputed in torch.
* :class:`OrtMemoryAttention`: the memory-attention graph; SAM 2's concatenated memory is split back into
  its spatial part and its ``num_obj_ptr_tokens`` object-pointer tokens (:data:`.graphs.MEMORY_INPUTS`).
* :class:`OrtMemoryEncoder`: the memory-encoder graph (:data:`.graphs.MEMORY_ENCODER_INPUTS`).
* :class:`OrtMaskDecoder`: the mask-decoder graph (:data:`.graphs.MASK_DECODER_INPUTS`), every mask token;
  SAM 2's choice among them (multimask, stability fallback, object-pointer token) is made here in torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from ..errors import BundleError
from .graphs import ENCODER_INPUTS, MASK_DECODER_INPUTS, MEMORY_ENCODER_INPUTS, MEMORY_INPUTS


def to_numpy(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().contiguous().numpy()


def to_torch(a: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)


def check_inputs(session: ort.InferenceSession, expected: tuple[str, ...], graph: str) -> None:
    names = tuple(i.name for i in session.get_inputs())
    if names != expected:
        raise BundleError(
            f"this {graph} file takes inputs {names}, this package's {graph} graph takes {expected}. Fix: "
            f"re-export it with this version (sam2-quant export --graphs {graph})."
        )


class OrtImageEncoder(nn.Module):
    """Drop-in for ``model.image_encoder`` running the trunk + neck (backbone graph) in ``session``."""

    def __init__(self, session: ort.InferenceSession, position_encoding: nn.Module) -> None:
        super().__init__()
        check_inputs(session, ENCODER_INPUTS, "backbone")
        self.session = session
        self.position_encoding = position_encoding

    def forward(self, sample: Tensor) -> dict[str, Any]:
        outs = self.session.run(None, {ENCODER_INPUTS[0]: to_numpy(sample)})
        feats = [to_torch(o, sample) for o in outs]
        pos = [self.position_encoding(f).to(f.dtype) for f in feats]
        return {"vision_features": feats[-1], "vision_pos_enc": pos, "backbone_fpn": feats}


class OrtMemoryAttention(nn.Module):
    """Drop-in for ``model.memory_attention`` running the memory-attention graph in ``session``.

    ``calls`` counts graph runs and ``max_obj_ptr_tokens`` the most pointer tokens one of them saw (so
    a caller can check the video loop really went through the file, pointers included).
    """

    def __init__(self, session: ort.InferenceSession, replaced: nn.Module | None = None) -> None:
        super().__init__()
        check_inputs(session, MEMORY_INPUTS, "memory_attention")
        self.session = session
        self.calls = 0
        self.max_obj_ptr_tokens = 0

    def forward(
        self,
        curr: Tensor | list[Tensor],
        memory: Tensor,
        curr_pos: Tensor | list[Tensor] | None = None,
        memory_pos: Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        cur = curr[0] if isinstance(curr, list) else curr
        pos = curr_pos[0] if isinstance(curr_pos, list) else curr_pos
        if pos is None or memory_pos is None:
            raise ValueError("the memory-attention graph needs curr_pos and memory_pos (SAM 2 passes both)")
        n_spatial = memory.shape[0] - num_obj_ptr_tokens
        if n_spatial <= 0 or n_spatial % cur.shape[0]:
            raise ValueError(
                f"memory has {n_spatial} spatial tokens, not a positive multiple of the {cur.shape[0]} "
                "tokens of the current frame: the graph rotates whole memory frames (SAM 2.1 video loop)"
            )
        outs = []
        for b in range(cur.shape[1]):  # the file is exported for batch 1
            feed = (
                cur[:, b : b + 1],
                pos[:, b : b + 1],
                memory[:n_spatial, b : b + 1],
                memory_pos[:n_spatial, b : b + 1],
                memory[n_spatial:, b : b + 1],
                memory_pos[n_spatial:, b : b + 1],
            )
            out = self.session.run(None, {k: to_numpy(v) for k, v in zip(MEMORY_INPUTS, feed)})[0]
            outs.append(to_torch(out, cur))
        self.calls += 1
        self.max_obj_ptr_tokens = max(self.max_obj_ptr_tokens, int(num_obj_ptr_tokens))
        return torch.cat(outs, dim=1)


class OrtMemoryEncoder(nn.Module):
    """Drop-in for ``model.memory_encoder`` running the memory-encoder graph in ``session``."""

    def __init__(self, session: ort.InferenceSession, replaced: nn.Module | None = None) -> None:
        super().__init__()
        check_inputs(session, MEMORY_ENCODER_INPUTS, "memory_encoder")
        self.session = session
        self.calls = 0

    def forward(self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False) -> dict[str, Any]:
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)  # as SAM 2's MemoryEncoder does; the graph starts after it
        feats, pos = [], []
        for b in range(pix_feat.shape[0]):
            f, p = self.session.run(
                None,
                dict(zip(MEMORY_ENCODER_INPUTS, (to_numpy(pix_feat[b : b + 1]), to_numpy(masks[b : b + 1])))),
            )
            feats.append(to_torch(f, pix_feat))
            pos.append(to_torch(p, pix_feat))
        self.calls += 1
        return {"vision_features": torch.cat(feats), "vision_pos_enc": [torch.cat(pos)]}


class OrtMaskDecoder(nn.Module):
    """Drop-in for ``model.sam_mask_decoder`` running the mask-decoder graph in ``session``.

    The graph returns all mask tokens' outputs; which ones SAM 2 keeps is decided per call, as
    ``MaskDecoder.forward`` decides it, from ``replaced``'s settings (``dynamic_multimask_via_stability``,
    ``use_multimask_token_for_obj_ptr`` and its stability fallback). ``calls`` counts calls.
    """

    reads_replaced = True  # callers hand in the real MaskDecoder, not a placeholder

    def __init__(self, session: ort.InferenceSession, replaced: nn.Module | None = None) -> None:
        super().__init__()
        check_inputs(session, MASK_DECODER_INPUTS, "sam_mask_decoder")
        if replaced is None:
            raise ValueError(
                "OrtMaskDecoder needs the MaskDecoder it replaces (its output selection settings)"
            )
        self.session = session
        self.selector = replaced  # read, never called as a whole nor changed
        # SAM 2's forward_image projects the high-resolution levels with the decoder's own convs
        self.conv_s0, self.conv_s1 = replaced.conv_s0, replaced.conv_s1
        self.calls = 0

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if high_res_features is None:
            raise ValueError("the mask-decoder graph takes high-resolution features (SAM 2.1 passes them)")
        hr0, hr1 = high_res_features
        outs = []
        for b in range(sparse_prompt_embeddings.shape[0]):  # the file is exported for batch 1
            i = 0 if repeat_image or image_embeddings.shape[0] == 1 else b
            h = 0 if hr0.shape[0] == 1 else i
            feed = (
                image_embeddings[i : i + 1],
                image_pe[:1],
                sparse_prompt_embeddings[b : b + 1],
                dense_prompt_embeddings[b : b + 1],
                hr0[h : h + 1],
                hr1[h : h + 1],
            )
            out = self.session.run(None, {k: to_numpy(v) for k, v in zip(MASK_DECODER_INPUTS, feed)})
            outs.append([to_torch(o, image_embeddings) for o in out])
        masks, iou_pred, tokens, obj = (torch.cat(parts) for parts in zip(*outs))
        self.calls += 1
        return self._select(masks, iou_pred, tokens, obj, multimask_output)

    def _select(
        self, masks: Tensor, iou_pred: Tensor, tokens: Tensor, obj: Tensor, multimask: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``MaskDecoder.forward``'s choice of outputs, on the graph's full outputs."""
        d: Any = self.selector  # SAM 2's MaskDecoder (untyped)
        if multimask:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif d.dynamic_multimask_via_stability:  # as MaskDecoder in eval mode: a file only runs inference
            masks, iou_pred = d._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        pointer_tokens = tokens[:, 1:] if multimask and d.use_multimask_token_for_obj_ptr else tokens[:, 0:1]
        return masks, iou_pred, pointer_tokens, obj


#: the drop-in for each video graph, by the ``SAM2Base`` attribute it replaces (= the graph's file stem)
VIDEO_DROP_INS: dict[str, type[nn.Module]] = {
    "memory_attention": OrtMemoryAttention,
    "memory_encoder": OrtMemoryEncoder,
    "sam_mask_decoder": OrtMaskDecoder,
}


def check_drop_in_names(names: Iterable[str]) -> None:
    """A ``ValueError`` naming every one of ``names`` that has no drop-in in :data:`VIDEO_DROP_INS`."""
    unknown = sorted(set(names) - set(VIDEO_DROP_INS))
    if unknown:
        raise ValueError(f"no onnxruntime drop-in for {unknown}; known: {sorted(VIDEO_DROP_INS)}")


def install_drop_ins(model: nn.Module, sessions: Mapping[str, ort.InferenceSession]) -> None:
    """Replace each ``model.<name>`` of ``sessions`` by its drop-in running that session (in place); the
    drop-in gets the module it replaces. An unknown name is a ``ValueError`` before anything is replaced."""
    check_drop_in_names(sessions)
    for name, session in sessions.items():
        setattr(model, name, VIDEO_DROP_INS[name](session, getattr(model, name)))
