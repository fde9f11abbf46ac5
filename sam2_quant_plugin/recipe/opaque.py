"""Layers a recipe must not quantize: Linear children whose parent reads their weight directly.

``nn.MultiheadAttention`` passes ``out_proj.weight`` straight to ``F.multi_head_attention_forward`` (and
its packed ``in_proj_weight`` is a bare parameter, no layer at all), so a fake-quant swapped onto
``out_proj`` would never run and torch.ao's ``prepare_qat`` rejects the layer's type outright. Such
layers are refused with a rule the user can paste to exclude them.
"""

from __future__ import annotations

import re

from torch import nn

#: parent type -> names of the Linear children it reads by weight (never calling their forward)
OPAQUE_CHILDREN: dict[type[nn.Module], tuple[str, ...]] = {nn.MultiheadAttention: ("out_proj",)}


def opaque_layers(model: nn.Module) -> dict[str, str]:
    """Layer name -> the parent that reads its weight directly, e.g. ``{"enc.attn.out_proj": "enc.attn"}``."""
    found: dict[str, str] = {}
    for name, mod in model.named_modules():
        for parent_type, children in OPAQUE_CHILDREN.items():
            if isinstance(mod, parent_type):
                for child in children:
                    if isinstance(getattr(mod, child, None), nn.Module):
                        found[f"{name}.{child}" if name else child] = name
    return found


def exclusion_regex(names: list[str], all_layers: list[str]) -> str:
    """A regex (``re:`` rule pattern) that matches exactly ``names`` among ``all_layers``.

    Digit runs are generalised (``blocks.0`` and ``blocks.1`` -> ``blocks\\.\\d+``) when that does not
    catch any other layer; otherwise the names are listed one by one.
    """
    general = sorted({re.sub(r"\d+", r"\\d+", re.escape(n)) for n in names})
    pattern = "|".join(general)
    wanted = set(names)
    if all(n in wanted for n in all_layers if re.fullmatch(pattern, n)):
        return pattern
    return "|".join(re.escape(n) for n in sorted(names))


def refusal(quantized: list[str], owners: dict[str, str], all_layers: list[str]) -> str:
    """The problem line for ``quantized`` opaque layers: which they are, why, and the rule that fixes it."""
    pattern = exclusion_regex(quantized, all_layers)
    shown = ", ".join(f"{n!r} (of {owners[n] or 'the model'!r})" for n in quantized[:4])
    more = f" and {len(quantized) - 4} more" if len(quantized) > 4 else ""
    return (
        f"{len(quantized)} layer(s) are read by weight inside nn.MultiheadAttention, which never calls their "
        f"forward, so a fake-quant there would not run: {shown}{more}. Fix: keep them float with the rule "
        f"`- {{match: 're:{pattern}', weight: null, activation: null}}` (first among the regex rules; in "
        f"Python: LayerRule(r're:{pattern}')), or narrow the recipe's targets / rules so they miss them"
    )
