"""Quantized attention MatMuls: fake-quant q, k, v and the softmax probabilities of selected modules.

``prepare_qat`` gives each attention module an attention rule selects four fake-quant children
(:data:`ATTN_FQ`) and two hooks. While the module runs, ``torch.nn.functional.scaled_dot_product_attention``
is :func:`quantized_sdpa`::

    softmax(fq_q(q) @ fq_k(k^T) * scale) -> fq_p -> @ fq_v(v)

so any module that calls ``F.scaled_dot_product_attention`` (SAM 2's Hiera ``MultiScaleAttention``, its
``Attention`` / ``RoPEAttention``, or another model's) is covered without touching its code. The hooks are
module-level functions (a prepared model deep-copies and pickles); the original function is restored when
the outermost quantized module returns, also when it raises (``always_call``). The patch is global for the
duration of the call: do not run a quantized-attention model concurrently from several Python threads.
k is fake-quantized *after* its transpose (per-tensor, so the same numbers), which makes the exported graph
``Q -> DQ -> MatMul`` on both inputs: the form onnxruntime fuses into an integer MatMul. Export then moves
the softmax ``scale`` onto q ahead of q's quantizer (:mod:`.onnx.attention_scale`), so no float ``Mul`` runs
over the scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RecipeError
from .fake_quant.frozen import FrozenFakeQuantize
from .qconfig import make_fake_quant
from .recipe.attention_resolve import AttentionPlan
from .torchao_adapter import FakeQuantizeBase

#: QuantizerInfo kind -> the attention module's attribute holding that fake-quant.
ATTN_FQ = {
    "attn_q": "attn_q_fake_quant",
    "attn_k": "attn_k_fake_quant",
    "attn_v": "attn_v_fake_quant",
    "attn_p": "attn_p_fake_quant",
}


@dataclass
class _Active:
    module: nn.Module
    calls: int = 0


_ACTIVE: list[_Active] = []
_ORIGINAL: list[Any] = []  # F.scaled_dot_product_attention while patched


def fixed_probs_quant(bits: int) -> FrozenFakeQuantize:
    """The probabilities' quantizer for ``probs: fixed``: unsigned, scale 1/(2^bits-1), zero point 0."""
    levels = 2**bits - 1
    return FrozenFakeQuantize(
        torch.tensor([1.0 / levels]), torch.zeros(1), bits, signed=False, symmetric=False
    )


def add_attention_quant(module: nn.Module, plan: AttentionPlan, device: torch.device) -> None:
    """Give ``module`` its q/k/v/probability fake-quants (per ``plan``) and the hooks that use them."""
    if plan.spec is None:
        return
    for kind in ("attn_q", "attn_k", "attn_v"):
        module.add_module(ATTN_FQ[kind], make_fake_quant(plan.spec).to(device))
    probs: nn.Module = (
        fixed_probs_quant(plan.spec.bits) if plan.probs == "fixed" else make_fake_quant(plan.spec)
    )
    module.add_module(ATTN_FQ["attn_p"], probs.to(device))
    module.register_forward_pre_hook(_enter)
    module.register_forward_hook(_leave, always_call=True)


def has_attention_quant(module: nn.Module) -> bool:
    return isinstance(getattr(module, ATTN_FQ["attn_q"], None), FakeQuantizeBase)


def _enter(module: nn.Module, _args: tuple[Any, ...]) -> None:
    if not _ACTIVE:
        _ORIGINAL.append(F.scaled_dot_product_attention)
        F.scaled_dot_product_attention = quantized_sdpa
    _ACTIVE.append(_Active(module))


def _leave(module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
    entry = _ACTIVE.pop()
    if not _ACTIVE:
        F.scaled_dot_product_attention = _ORIGINAL.pop()
    if output is not None and entry.calls == 0 and not torch.jit.is_scripting():
        raise RecipeError(
            f"{type(module).__name__} ran without calling torch.nn.functional.scaled_dot_product_attention, "
            "so its attention rule quantized nothing. Fix: remove the attention rule for it (only modules "
            "that call F.scaled_dot_product_attention through the torch.nn.functional module are covered)"
        )


def quantized_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the innermost active module's fake-quantized MatMul inputs."""
    if not _ACTIVE:
        raise RuntimeError("quantized_sdpa runs only inside a module prepared with an attention rule")
    entry = _ACTIVE[-1]
    entry.calls += 1
    mod = entry.module
    if attn_mask is not None or is_causal or enable_gqa:
        raise RecipeError(
            f"{type(mod).__name__}: quantized attention supports no attn_mask / is_causal / enable_gqa (got "
            f"attn_mask={'set' if attn_mask is not None else None}, is_causal={is_causal}, "
            f"enable_gqa={enable_gqa}). Fix: remove the attention rule for this module"
        )
    fq = {kind: getattr(mod, attr) for kind, attr in ATTN_FQ.items()}
    s = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    q = fq["attn_q"](query)
    kt = fq["attn_k"](key.transpose(-2, -1))
    p = torch.softmax(torch.matmul(q, kt) * s, dim=-1)
    p = fq["attn_p"](p)
    if dropout_p > 0.0:  # as SDPA: dropout whenever dropout_p > 0 (SAM 2 passes 0.0 in eval mode)
        p = F.dropout(p, dropout_p, training=True)
    return torch.matmul(p, fq["attn_v"](value))
