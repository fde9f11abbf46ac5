"""Quantized package: integer weight codes (int8 storage) + per-channel scales/zero points, the float
rest of the model, and conversion back into a vanilla SAM 2 ``state_dict`` that ``build_sam2`` loads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io.atomic import atomic_write
from ..io.torch_files import load_torch_dict
from ..numerics import qrange, quantize_to_int, to_groups
from .student import weight_quantizers

log = logging.getLogger(__name__)
FORMAT = "sam2_quant_plugin.cdpq.package/1"
_QUANT_KEYS = ("fake_quant.", "activation_post_process.")
_PACKAGE_FIX = "pass the package.pt of a `sam2-quant cdpq` run (or a file written by save_package)"


def _vanilla_key(key: str) -> bool:
    return not any(k in key for k in _QUANT_KEYS)


@torch.no_grad()
def build_package(student: nn.Module, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Package of a prepared student: ``layers[name] = {codes (int8), scale, zero_point, bits, ch_axis,
    group_size}`` (codes in the weight's shape; per-group scales index :func:`to_groups` rows)."""
    layers: dict[str, dict[str, Any]] = {}
    for name, fq in weight_quantizers(student).items():
        weight = student.get_submodule(name).weight.detach()
        scale, zp = fq.calculate_qparams()
        qmin, qmax = qrange(fq.bits, fq.signed, fq.narrow_range)
        axis = fq.ch_axis if fq.per_channel and scale.numel() > 1 else None
        group = getattr(fq, "group_size", 0)
        codes = quantize_to_int(fq.quant_view(weight), scale, zp, qmin, qmax, axis).reshape(weight.shape)
        if codes.min() < -128 or codes.max() > 127:
            raise ValueError(f"{name}: codes outside int8 ({fq.bits} bits, signed={fq.signed})")
        layers[name] = {
            "codes": codes.to(torch.int8),
            "scale": scale.float().clone(),
            "zero_point": zp.to(torch.int32).clone(),
            "bits": fq.bits,
            "ch_axis": axis,
            "group_size": group,
        }
    quantized = {f"{n}.weight" for n in layers}
    rest = {
        k: v.detach().cpu().clone()
        for k, v in student.state_dict().items()
        if _vanilla_key(k) and k not in quantized
    }
    return {"format": FORMAT, "meta": dict(meta or {}), "layers": layers, "float": rest}


def dequantize_layer(entry: dict[str, Any]) -> torch.Tensor:
    codes = entry["codes"].float()
    if group := entry.get("group_size", 0):
        flat = dequantize_layer({**entry, "codes": to_groups(codes, group), "group_size": 0})
        return flat.reshape(codes.shape)
    axis = entry["ch_axis"]
    scale, zp = entry["scale"].float(), entry["zero_point"].float()
    if axis is None:
        return (codes - zp.reshape(())) * scale.reshape(())
    shape = [1] * codes.dim()
    shape[axis] = -1
    return (codes - zp.reshape(shape)) * scale.reshape(shape)


def package_to_state_dict(package: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A vanilla SAM 2 state_dict: dequantized weights beside the float tensors."""
    if package.get("format") != FORMAT:
        raise CheckpointError(
            f"not a CDPQ package (format {package.get('format')!r}, expected {FORMAT!r}). Fix: {_PACKAGE_FIX}"
        )
    state = dict(package["float"])
    for name, entry in package["layers"].items():
        state[f"{name}.weight"] = dequantize_layer(entry)
    return state


def save_package(package: dict[str, Any], path: str | Path) -> Path:
    return atomic_write(path, lambda p: torch.save(package, p))


def load_package(path: str | Path) -> dict[str, Any]:
    """A package written by :func:`save_package`; a ``CheckpointError`` when the file is not one."""
    return load_torch_dict(path, what="a CDPQ package", fix=_PACKAGE_FIX)


def package_to_checkpoint(package: dict[str, Any] | str | Path, path: str | Path) -> Path:
    """Write ``{"model": state_dict}`` that ``build_sam2_model(config, checkpoint=path)`` loads strictly."""
    pkg = load_package(package) if isinstance(package, (str, Path)) else package
    state = package_to_state_dict(pkg)
    out = atomic_write(path, lambda p: torch.save({"model": state}, p))
    log.info("vanilla SAM 2 checkpoint with %d dequantized layers: %s", len(pkg["layers"]), out)
    return out


def package_nbytes(package: dict[str, Any]) -> dict[str, float]:
    """Storage in the package (int8 codes) and if the codes were bit-packed."""
    stored = packed = 0.0
    for e in package["layers"].values():
        n = e["codes"].numel()
        side = 4.0 * e["scale"].numel() + 4.0 * e["zero_point"].numel()
        stored += n + side
        packed += n * e["bits"] / 8 + side
    floats = sum(4.0 * v.numel() for v in package["float"].values() if v.is_floating_point())
    return {"int8_bytes": stored, "packed_bytes": packed, "float_bytes": floats}
