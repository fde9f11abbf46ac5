"""What a bundle's ONNX graphs must be: parseable, external data inside the bundle, the encoder at the
manifest's image size, and whatever the exporting model family checks (its adapter's optional hooks
``check_graph`` and ``manifest_problems``, e.g. SAM 2: each file is the graph its entry names, the encoder's
trunk is the config's). Edited or swapped manifest entries are caught before anything runs on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import BundleError, ModelConfigError

REEXPORT = "Fix: export the bundle again with `sam2-quant export --out NEW_FOLDER`."


def family_hook(family: str, name: str) -> Callable[..., Any] | None:
    """The optional hook ``name`` of the adapter registered as ``family``; None when it has none or the
    family is unknown (the manifest schema names an unknown family itself)."""
    from ..models.adapter import hook
    from ..models.registry import get_adapter

    try:
        return hook(get_adapter(family), name)
    except ModelConfigError:
        return None


def check_onnx(path: Path, key: str, image_size: int, manifest: Mapping[str, Any] | None = None) -> None:
    """``path`` (manifest entry ``key``) parses as ONNX with its external data inside the bundle, an encoder
    takes ``image_size`` images, and the family's ``check_graph`` hook accepts it (given ``manifest``)."""
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
    check = None if manifest is None else family_hook(str(manifest.get("family", "sam2")), "check_graph")
    if check is not None and manifest is not None:
        check(proto, path, key, manifest)
    if key.startswith("encoder") and proto.graph.input:
        dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        if len(dims) == 4 and all(dims[2:]) and dims[2:] != [image_size, image_size]:
            raise BundleError(
                f"manifest.json says image_size {image_size} but {path.name} takes {dims[2]}x{dims[3]} "
                f"images: the manifest was edited or belongs to another bundle. Fix: set image_size to "
                f"{dims[2]}, or export again."
            )
