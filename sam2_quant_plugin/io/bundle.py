"""The ONNX bundle contract: ``manifest.json`` schema (versioned) and files that stay inside the bundle.

Every path in a manifest is relative and resolves inside the bundle folder (symlinks included); this is
checked before any file is opened, so a bundle can never make the tool read files elsewhere. Graph files
must be regular, non-empty files of the recorded size whose external data (if any) stays beside them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import BundleError
from ..seeds import seed_problem
from .graph_checks import REEXPORT, check_onnx, family_hook

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: "family" and "seed" recorded
MAX_MANIFEST_BYTES = 16 << 20
GRAPH_KEYS = (
    "encoder",
    "decoder",
    "encoder_fp16",
    "decoder_fp16",
    "memory_attention",
    "memory_encoder",
    "memory_attention_fp16",
    "memory_encoder_fp16",
    "sam_mask_decoder",
    "sam_mask_decoder_fp16",
)
#: attribute export sets on a model: the photos it was calibrated on (recorded in the manifest)
CALIBRATION_ATTR = "sam2_quant_calibration"


def manifest_header(model: object) -> dict[str, Any]:
    """Fields every new manifest carries: the schema version and the calibration photos (if any)."""
    return {"manifest_version": MANIFEST_VERSION, "calibration": getattr(model, CALIBRATION_ATTR, None)}


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """Read and validate ``bundle/manifest.json``; raises :class:`BundleError` naming the problem."""
    d = Path(bundle)
    path = d / MANIFEST
    if not d.is_dir():
        raise BundleError(f"{d} is not a folder. Fix: pass the folder written by `sam2-quant export`.")
    if not path.is_file():
        raise BundleError(
            f"{path} not found: {d} is not an ONNX bundle. Fix: run sam2-quant export first "
            "(or pass the folder it wrote)."
        )
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB: not a manifest. {REEXPORT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON ({e}). {REEXPORT}") from None
    validate_manifest(data, str(path))
    return data


def _type_ok(value: Any, kind: Any) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


#: key -> (type(s), required)
_FIELDS: dict[str, tuple[Any, bool]] = {
    "manifest_version": (int, False),  # absent in bundles written before the field (read as 1)
    "weights": (str, True),
    "random_init": (bool, True),
    "family": (str, False),  # the model family (adapter) that exported it; absent before version 2: sam2
    "seed": ((int, type(None)), False),  # the random init's seed (None: loaded weights); absent before 2
    "config": (str, True),
    "image_size": (int, True),
    "recipe": ((str, type(None)), False),
    "recipe_spec": ((dict, type(None)), False),
    "weight_format": (str, True),
    "nbits_widths": (list, False),  # MatMulNBits kernel widths the file uses (weight_format matmulnbits)
    "opset": (int, True),
    "multimask": (bool, False),
    "files": (dict, True),
    "bytes": (dict, False),
    "weight_bytes_per_layer": (dict, False),
    "stored_bits_per_layer": (dict, False),
    "calibration": ((dict, type(None)), False),
    "target_cpu": (str, False),  # "any" | "vnni": the CPUs whose int8 kernels the file is right on
    "int8_saturation": (dict, False),  # per fused int8 layer, weight pairs that can saturate on AVX2
}


def validate_manifest(m: Any, where: str = MANIFEST) -> None:
    """Check a manifest against the schema (version :data:`MANIFEST_VERSION`)."""
    if not isinstance(m, dict):
        raise BundleError(f"{where} must hold a JSON object, got a JSON {type(m).__name__}. {REEXPORT}")
    problems = [f"missing key {k!r}" for k, (_, req) in _FIELDS.items() if req and k not in m]
    problems += [
        f"{k!r} must be {_names(kind)}, got {m[k]!r:.60}"
        for k, (kind, _) in _FIELDS.items()
        if k in m and not _type_ok(m[k], kind)
    ]
    if not problems:
        problems = _value_problems(m)
    if problems:
        raise BundleError(
            f"{where} does not fit manifest schema {MANIFEST_VERSION}: {'; '.join(problems)}. {REEXPORT}"
        )


def _names(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else {dict: "an object"}.get(k, k.__name__) for k in kinds)


def _value_problems(m: dict[str, Any]) -> list[str]:
    out = []
    version = m.get("manifest_version", 1)
    if isinstance(version, int) and not 1 <= version <= MANIFEST_VERSION:
        out.append(f"manifest_version {version} is not one of 1..{MANIFEST_VERSION} (the ones read here)")
    size = m["image_size"]
    if not 32 <= size <= 8192 or size % 32:
        out.append(f"image_size {size} must be a multiple of 32 in 32..8192")
    from ..onnx.lowering import WEIGHT_FORMATS  # the exporter's list (onnx is needed to read a bundle anyway)

    if m["weight_format"] not in WEIGHT_FORMATS:
        out.append(f"weight_format {m['weight_format']!r} is not one of {WEIGHT_FORMATS}")
    files = m["files"]
    for key in ("encoder", "decoder"):
        if key not in files:
            out.append(f"files has no {key!r} entry")
    out += [f"files has an unknown entry {k!r}" for k in files if k not in GRAPH_KEYS]
    out += [f"files[{k!r}] must be a relative path" for k, v in files.items() if not isinstance(v, str)]
    if ("encoder_fp16" in files) != ("decoder_fp16" in files):
        out.append("files must list encoder_fp16 and decoder_fp16 together")
    if m.get("seed") is not None and (problem := seed_problem(m["seed"])):
        out.append(problem)
    family_problems = family_hook(str(m.get("family", "sam2")), "manifest_problems")
    if family_problems is not None:
        out += family_problems(m)
    sizes = m.get("bytes") or {}
    out += [f"bytes[{k!r}] must be an int >= 0" for k, v in sizes.items() if not _type_ok(v, int) or v < 0]
    return out


def inside(bundle: str | Path, rel: Any, what: str) -> Path:
    """``bundle/rel`` when it resolves inside ``bundle`` (symlinks followed); else :class:`BundleError`."""
    root = Path(bundle).resolve()
    if not isinstance(rel, str) or not rel or "\x00" in rel or Path(rel).is_absolute():
        raise BundleError(
            f"{what} is {rel!r}: a bundle may only name files by paths relative to its own folder. "
            "Fix: use a bundle written by `sam2-quant export`; never hand-edit paths in manifest.json."
        )
    full = (root / rel).resolve()
    if full != root and root not in full.parents:
        raise BundleError(
            f"{what} is {rel!r}, which resolves to {full}, outside the bundle {root}; refusing to open it. "
            "Fix: use a bundle written by `sam2-quant export` (every file inside its folder)."
        )
    return full


def bundle_files(
    bundle: str | Path, manifest: Mapping[str, Any], keys: Iterable[str] | None = None
) -> dict[str, Path]:
    """Checked paths of the manifest's graph files (all, or ``keys``), in manifest order.

    Every path is checked for containment first, then each file: a regular file (not a FIFO or device),
    not empty, of the size the manifest records, parseable as ONNX, external data inside the bundle,
    and (encoders) an input of ``image_size`` pixels.
    """
    files = manifest["files"]
    keys = list(files) if keys is None else list(keys)
    paths = {k: inside(bundle, files[k], f"manifest files[{k!r}]") for k in keys}
    for key, path in paths.items():
        nbytes = (manifest.get("bytes") or {}).get(key)
        check_graph_file(path, key, nbytes, int(manifest["image_size"]), manifest=manifest)
    return paths


def check_graph_file(
    path: Path,
    key: str,
    nbytes: int | None,
    image_size: int,
    *,
    manifest: Mapping[str, Any] | None = None,
) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        raise BundleError(f"bundle file {path} ({key}) cannot be read ({e.strerror}). {REEXPORT}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(
            f"bundle file {path} ({key}) is not a regular file (a folder, FIFO or device); refusing to "
            f"read it. {REEXPORT}"
        )
    if st.st_size == 0:
        raise BundleError(f"bundle file {path} ({key}) is empty (0 bytes). {REEXPORT}")
    if nbytes is not None and st.st_size != nbytes:
        raise BundleError(
            f"bundle file {path} ({key}) is {st.st_size} bytes but manifest.json records {nbytes}: it is "
            f"truncated or was replaced. {REEXPORT}"
        )
    check_onnx(path, key, image_size, manifest)


def reference_seed(manifest: Mapping[str, Any]) -> int:
    """The seed to rebuild a random-init reference with: the manifest's ``seed`` (version 2 on).

    Version-1 bundles did not record it; their weights label ``random-init(seed=N)`` is read once here,
    with a warning, so old bundles still validate.
    """
    if manifest.get("seed") is not None or "seed" in manifest:
        return int(manifest.get("seed") or 0)
    m = re.fullmatch(r"random-init\(seed=(\d+)\)", str(manifest.get("weights", "")))
    if m is None:
        return 0
    log.warning(
        "manifest.json (version 1) does not record the seed; read from its weights label. %s", REEXPORT
    )
    seed = int(m.group(1))
    problem = seed_problem(seed)
    if problem is not None:
        raise BundleError(f"manifest.json weights label {m.group(0)!r:.80}: {problem}. {REEXPORT}")
    return seed


def reference_checkpoint(manifest: Mapping[str, Any], checkpoint: str | None) -> str | None:
    """The checkpoint to rebuild the PyTorch reference from.

    The manifest's ``weights`` is a label, never opened (it names a path on the machine that exported).
    """
    if manifest["random_init"]:
        return checkpoint
    if checkpoint is None:
        raise BundleError(
            f"this bundle was exported from checkpoint {manifest['weights']!r}; the manifest only records "
            "its name. Fix: pass --checkpoint PATH to that checkpoint."
        )
    return checkpoint
