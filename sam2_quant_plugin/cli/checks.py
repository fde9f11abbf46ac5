"""Up-front input checks of the CLI: run before the slow part (model build, calibration, export).

Each raises a :class:`~sam2_quant_plugin.errors.Sam2QuantError` subclass whose message names the problem
and the fix; ``sam2-quant`` prints it as one line and exits 2.
"""

from __future__ import annotations

import errno
import math
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from ..errors import ConfigError, DataError
from ..io.staging import refuse_non_empty

#: sub-modules of SAM 2 that an ONNX bundle holds (encoder + prompt encoder + mask decoder)
BUNDLE_ROOTS = ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder")
#: bytes per weight of a graph file by storage, and headroom for graph structure and metadata
BYTES_PER_WEIGHT = {"float": 4.0, "int8": 1.0, "int4": 0.5}
HEADROOM = 1.05


def os_error_message(e: OSError) -> str | None:
    """One line (problem + fix) for an ``OSError`` a user can cause, or None for a genuine bug."""
    where = e.filename or "the output folder"
    if e.errno == errno.ENOSPC:
        return f"disk full while writing {where}. Fix: free space there, or pass --out on a larger disk."
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where}: {e.strerror}. Fix: pass --out to a folder you can write to."
    if e.errno == errno.EDQUOT:
        return f"disk quota exceeded while writing {where}. Fix: free space or pass --out elsewhere."
    return None


def check_positive(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} is {value}; it must be at least 1. Fix: pass e.g. {flag} 4.")
    return value


def check_writable(folder: str | Path, need_bytes: int = 0, *, flag: str = "--out") -> Path:
    """``folder`` (created if missing) can take a new file and has ``need_bytes`` free.

    Checks by creating (and removing) a small temporary file in the nearest existing parent, so a
    read-only mount, a missing permission or a full disk is caught before any slow work.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {folder}: {probe} is a file, not a folder. Fix: pass a folder path.")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".sam2-quant-probe-"):
            pass
    except OSError as e:
        raise ConfigError(
            f"{flag} {folder} is not writable ({e.strerror}). Fix: pass {flag} to a folder you can write to."
        ) from None
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise ConfigError(
            f"{flag} {folder}: only {free / 1e6:.1f} MB free on that disk, the output needs about "
            f"{need_bytes / 1e6:.1f} MB. Fix: free space, or pass {flag} on a larger disk."
        )
    return folder


def expected_bundle_bytes(model: nn.Module, weight_format: str, *, quantized: bool, fp16: bool) -> int:
    """A lower estimate of an ONNX bundle's size: the weights of the exported parts at their storage."""
    n = sum(p.numel() for r in BUNDLE_ROOTS if hasattr(model, r) for p in getattr(model, r).parameters())
    per = BYTES_PER_WEIGHT["float"]
    if quantized:
        per = BYTES_PER_WEIGHT["int4" if weight_format in ("int4", "matmulnbits") else "int8"]
    total = n * per * (1.5 if fp16 else 1.0)  # fp16 graphs: a second copy at half the width
    return int(total * HEADROOM)


def check_export_target(out: str | Path, model: nn.Module, opts: dict[str, object]) -> None:
    """``--out`` is new (or an empty folder), writable, with room for the bundle: checked before the work."""
    refuse_non_empty(Path(out))
    fmt, quantized, fp16 = str(opts["weight_format"]), bool(opts["recipe"]), bool(opts["fp16"])
    check_writable(out, expected_bundle_bytes(model, fmt, quantized=quantized, fp16=fp16))


def expected_run_bytes(model: nn.Module, *, export: bool) -> int:
    """A lower estimate of a ``run`` folder: the fake-quant state dict (float) and the int8 bundle."""
    state = 4 * sum(p.numel() for p in model.parameters())
    return int(state * HEADROOM) + (
        expected_bundle_bytes(model, "int8", quantized=True, fp16=False) if export else 0
    )


def check_point(x: float, y: float, hw: tuple[int, int], what: str) -> None:
    h, w = hw
    if not (math.isfinite(x) and math.isfinite(y)):
        raise DataError(f"{what} ({x}, {y}) is not a finite number. Fix: pass pixel coordinates, e.g. 12,8.")
    if not (0 <= x <= w and 0 <= y <= h):
        raise DataError(
            f"{what} ({x:g}, {y:g}) is outside the {w}x{h} image. Fix: use 0 <= x <= {w}, 0 <= y <= {h}."
        )


def check_box(box: Iterable[float], hw: tuple[int, int]) -> None:
    x0, y0, x1, y1 = box
    check_point(x0, y0, hw, "--box corner")
    check_point(x1, y1, hw, "--box corner")
    if not (x1 > x0 and y1 > y0):
        raise DataError(
            f"--box {x0:g},{y0:g},{x1:g},{y1:g} is empty or inverted. Fix: pass x0,y0,x1,y1 with x1 > x0 "
            "and y1 > y0 (top-left, then bottom-right corner)."
        )


def parse_floats(text: str, n: int, what: str) -> list[float]:
    """``n`` comma-separated numbers of the option ``--what`` (a point: 2, a box: 4), or a named error."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n:
        example = "120,80" if n == 2 else "10,20,200,160"
        raise DataError(
            f"--{what} {text!r} must be {n} comma-separated numbers. Fix: pass e.g. --{what} {example} "
            f"(negative values as --{what}=-5,10)."
        )
    return vals
