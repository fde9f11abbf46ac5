"""What a bundle's ONNX graphs must be: parseable, external data inside the bundle, and (SAM 2 bundles) each
file the graph its manifest entry names, with the image size and the Hiera trunk the manifest records.

Edited or swapped manifest entries are caught here, from the graph's inputs and initializer names (no
weights are read), before anything runs on them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import BundleError

REEXPORT = "Fix: export the bundle again with `sam2-quant export --out NEW_FOLDER`."
#: SAM 2.1 config -> Hiera trunk blocks (stages 1+2+7+2, 1+2+11+2, 2+3+16+3, 2+6+36+4): one count per config
TRUNK_BLOCKS = {"sam2.1_hiera_t": 12, "sam2.1_hiera_s": 16, "sam2.1_hiera_b+": 24, "sam2.1_hiera_l": 48}
_BLOCK = re.compile(r"image_encoder\.trunk\.blocks\.(\d+)\.")


def _role_inputs(key: str) -> tuple[str, tuple[str, ...]] | None:
    """(graph role, its input names) for a manifest ``files`` key of a SAM 2 bundle."""
    from ..sam2 import graphs as g

    base = key.removesuffix("_fp16")
    return {
        "encoder": ("an image encoder", g.ENCODER_INPUTS),
        "decoder": ("a prompt decoder", g.DECODER_INPUTS),
        "memory_attention": ("a memory attention", g.MEMORY_INPUTS),
        "memory_encoder": ("a memory encoder", g.MEMORY_ENCODER_INPUTS),
        "sam_mask_decoder": ("a mask decoder", g.MASK_DECODER_INPUTS),
    }.get(base)


def check_onnx(
    path: Path, key: str, image_size: int, *, family: str = "sam2", config: str | None = None
) -> None:
    """``path`` (manifest entry ``key``) parses as ONNX with its external data inside the bundle; a SAM 2
    graph must also have its role's inputs, an encoder the manifest's ``image_size`` and trunk."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise BundleError(f"bundle file {path} ({key}) is not a valid ONNX model ({e}). {REEXPORT}") from None
    for init in proto.graph.initializer:
        if uses_external_data(init):
            from .bundle import inside

            loc = next((e.value for e in init.external_data if e.key == "location"), "")
            inside(path.parent, loc, f"{path.name}: external data of initializer {init.name!r}")
    if family == "sam2":
        _check_role(proto, path, key)
        if key == "encoder" and config is not None:
            check_trunk(proto, path, config)
    if key.startswith("encoder") and proto.graph.input:
        dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        if len(dims) == 4 and all(dims[2:]) and dims[2:] != [image_size, image_size]:
            raise BundleError(
                f"manifest.json says image_size {image_size} but {path.name} takes {dims[2]}x{dims[3]} "
                f"images: the manifest was edited or belongs to another bundle. Fix: set image_size to "
                f"{dims[2]}, or export again."
            )


def _check_role(proto: Any, path: Path, key: str) -> None:
    role = _role_inputs(key)
    if role is None:
        return
    what, expected = role
    weights = {init.name for init in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in weights]
    if tuple(inputs) != expected:
        raise BundleError(
            f"manifest.json lists {path.name} as files[{key!r}], but it is not {what} graph: its inputs are "
            f"{inputs} where {what} takes {list(expected)}. The manifest's entries were edited or swapped. "
            f"{REEXPORT}"
        )


def check_trunk(proto: Any, path: Path, config: str) -> None:
    """The encoder's Hiera trunk has ``config``'s number of blocks (counted from initializer names). Judged
    only when the count found is another config's: a count no config has (names changed by an exporter) is
    not evidence, so a valid bundle is never refused on it."""
    from ..sam2.names import config_short_name

    want = TRUNK_BLOCKS.get(config_short_name(config))
    blocks = {int(m.group(1)) for init in proto.graph.initializer if (m := _BLOCK.search(init.name))}
    have = max(blocks) + 1 if blocks else None
    match = [name for name, n in TRUNK_BLOCKS.items() if n == have]
    if want is None or have == want or not match:
        return
    raise BundleError(
        f"manifest.json says config {config!r} (a Hiera trunk of {want} blocks) but {path.name} holds a "
        f"trunk of {have} blocks ({match[0]}): the manifest was edited or belongs to another bundle. "
        f"Fix: set config to {match[0]!r} in manifest.json, or export again."
    )
