"""SAM 2's checks of a bundle it exported (the adapter's ``check_graph`` / ``manifest_problems`` hooks).

Each file must be the graph its manifest entry names (judged by its inputs), and the encoder's Hiera trunk
must be the manifest config's (judged by its block count). Edited or swapped manifest entries are caught
here, from the graph's inputs and initializer names (no weights are read), before anything runs on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BundleError
from . import graphs as g
from .names import CONFIGS, TRUNK_BLOCKS, config_short_name, trunk_size

REEXPORT = "Fix: export the bundle again with `sam2-quant export --out NEW_FOLDER`."
#: manifest ``files`` key (fp16 suffix removed) -> (what the graph is, its input names)
ROLES = {
    "encoder": ("an image encoder", g.ENCODER_INPUTS),
    "decoder": ("a prompt decoder", g.DECODER_INPUTS),
    "memory_attention": ("a memory attention", g.MEMORY_INPUTS),
    "memory_encoder": ("a memory encoder", g.MEMORY_ENCODER_INPUTS),
    "sam_mask_decoder": ("a mask decoder", g.MASK_DECODER_INPUTS),
}


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What is wrong with a SAM 2 manifest's own fields (phrases for the schema error): its config."""
    try:
        config_short_name(manifest["config"])
    except (KeyError, ValueError):
        return [
            f"config {manifest.get('config')!r:.60} is not a SAM 2 config (one of {', '.join(CONFIGS)}; "
            "or repair it in manifest.json)"
        ]
    return []


def check_graph(proto: Any, path: Path, key: str, manifest: Mapping[str, Any]) -> None:
    """``proto`` (manifest entry ``key``) has its role's inputs; an encoder has the config's trunk."""
    role = ROLES.get(key.removesuffix("_fp16"))
    if role is not None:
        what, expected = role
        weights = {init.name for init in proto.graph.initializer}
        inputs = [i.name for i in proto.graph.input if i.name not in weights]
        if tuple(inputs) != tuple(expected):
            raise BundleError(
                f"manifest.json lists {path.name} as files[{key!r}], but it is not {what} graph: its inputs "
                f"are {inputs} where {what} takes {list(expected)}. The manifest's entries were edited or "
                f"swapped. {REEXPORT}"
            )
    if key == "encoder" and manifest.get("config") is not None:
        check_trunk(proto, path, str(manifest["config"]))


def check_trunk(proto: Any, path: Path, config: str) -> None:
    """The encoder's Hiera trunk has ``config``'s number of blocks (counted from initializer names). Judged
    only when the count found is another config's: a count no config has (names changed by an exporter) is
    not evidence, so a valid bundle is never refused on it."""
    want = TRUNK_BLOCKS.get(config_short_name(config))
    have, match = trunk_size(init.name for init in proto.graph.initializer)
    if want is None or have == want or match is None:
        return
    raise BundleError(
        f"manifest.json says config {config!r} (a Hiera trunk of {want} blocks) but {path.name} holds a "
        f"trunk of {have} blocks ({match}): the manifest was edited or belongs to another bundle. "
        f"Fix: set config to {match!r} in manifest.json, or export again."
    )
