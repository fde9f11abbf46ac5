"""Names of the SAM 2.1 configs and components this package knows about."""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import MappingProxyType

from sam2_quant_plugin.errors import ModelConfigError

#: Short config name -> hydra config path inside the ``sam2`` package.
CONFIGS = MappingProxyType(
    {
        "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
        "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
    }
)

#: Short config name -> file name of Meta's released SAM 2.1 checkpoint for it.
CHECKPOINT_FILES = MappingProxyType(
    {
        "sam2.1_hiera_t": "sam2.1_hiera_tiny.pt",
        "sam2.1_hiera_s": "sam2.1_hiera_small.pt",
        "sam2.1_hiera_b+": "sam2.1_hiera_base_plus.pt",
        "sam2.1_hiera_l": "sam2.1_hiera_large.pt",
    }
)

#: Short config name -> Hiera trunk blocks (stages 1+2+7+2, 1+2+11+2, 2+3+16+3, 2+6+36+4): one count per
#: config, so a checkpoint's or an exported encoder's block count names its config.
TRUNK_BLOCKS = MappingProxyType(
    {"sam2.1_hiera_t": 12, "sam2.1_hiera_s": 16, "sam2.1_hiera_b+": 24, "sam2.1_hiera_l": 48}
)

_TRUNK_BLOCK = re.compile(r"image_encoder\.trunk\.blocks\.(\d+)\.")


def trunk_size(names: Iterable[str]) -> tuple[int | None, str | None]:
    """The Hiera trunk blocks named in ``names`` (state-dict keys, ONNX initializer names) and the config that
    has that many; ``None`` for what is not found."""
    blocks = {int(m.group(1)) for name in names if (m := _TRUNK_BLOCK.search(name))}
    have = max(blocks) + 1 if blocks else None
    return have, next((config for config, n in TRUNK_BLOCKS.items() if n == have), None)


#: Parameters SAM 2.1 added to SAM 2 (2.0): a 2.0 checkpoint lacks exactly these.
SAM21_ONLY_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias")

#: Alias (lower case) -> short config name.
ALIASES = MappingProxyType(
    {
        "t": "sam2.1_hiera_t",
        "tiny": "sam2.1_hiera_t",
        "sam2.1_hiera_tiny": "sam2.1_hiera_t",
        "s": "sam2.1_hiera_s",
        "small": "sam2.1_hiera_s",
        "sam2.1_hiera_small": "sam2.1_hiera_s",
        "b+": "sam2.1_hiera_b+",
        "base_plus": "sam2.1_hiera_b+",
        "base-plus": "sam2.1_hiera_b+",
        "sam2.1_hiera_base_plus": "sam2.1_hiera_b+",
        "l": "sam2.1_hiera_l",
        "large": "sam2.1_hiera_l",
        "sam2.1_hiera_large": "sam2.1_hiera_l",
    }
)

#: The five sub-modules of ``SAM2Base`` that hold (almost) all the weights.
COMPONENTS = (
    "image_encoder",
    "sam_prompt_encoder",
    "sam_mask_decoder",
    "memory_attention",
    "memory_encoder",
)


def config_short_name(name: str) -> str:
    """Return the short config name (a key of ``CONFIGS``) for a short name, alias or yaml path."""
    key = str(name).strip()
    if key in CONFIGS:
        return key
    lowered = key.lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    for short, yaml_path in CONFIGS.items():
        if key in (yaml_path, yaml_path.rsplit("/", 1)[-1], yaml_path.rsplit("/", 1)[-1][: -len(".yaml")]):
            return short
    valid = ", ".join(list(CONFIGS) + list(ALIASES))
    raise ModelConfigError(
        f"unknown SAM 2 config {name!r}. Fix: pass one of: {valid} (SAM 2.1 Hiera tiny/small/base+/large)."
    )


def resolve_config(name: str) -> str:
    """Return the hydra config path (e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``) for a name or alias.

    Raises ``ModelConfigError`` listing the valid names when ``name`` is unknown.
    """
    return CONFIGS[config_short_name(name)]
