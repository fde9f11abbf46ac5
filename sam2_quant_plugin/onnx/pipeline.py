"""An ONNX bundle: the model family's graphs (SAM 2: ``encoder.onnx`` + ``decoder.onnx``), optional fp16
copies and ``manifest.json`` in one folder. The graphs and the parity check come from the adapter."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from ..api import quant_state_or_none
from ..errors import ExportError
from ..int8.deploy import FLOAT_INT8_NOTE
from ..int8.host import host_int8_path
from ..int8.parity import avx2_parity
from ..int8.safety import SaturationReport
from ..io.atomic import atomic_write_json
from ..io.bundle import manifest_header
from ..io.bundle import read_manifest as read_manifest  # the schema-checked reader (re-exported)
from ..io.staging import staged_output
from ..models.adapter import hook
from ..models.registry import adapter_for
from .audit import runtime_kernels
from .export import (
    check_export_options,
    check_int8_target,
    export_prepared,
    ready_for_export,
)
from .fp16 import to_fp16
from .matmulnbits import NBITS_WIDTHS, check_widths

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@staged_output  # written under a temporary name, renamed to out_dir at the end, removed on failure
def export_bundle(
    model: nn.Module,
    out_dir: str | Path,
    *,
    image_size: int | None = None,
    weight_format: str = "int8",
    opset: int = 17,
    fp16: bool = False,
    multimask: bool = False,
    target_cpu: str = "any",
    nbits_widths: Sequence[int] = NBITS_WIDTHS,
    graphs: Sequence[str] = (),
) -> dict[str, object]:
    """Export the model family's graphs into ``out_dir`` (must not hold a bundle yet); returns the manifest.

    SAM 2: ``encoder.onnx`` and ``decoder.onnx`` at ``image_size`` (default: the model's own), plus the
    graphs its recipe's targets need and ``graphs`` on request (``memory_attention``, ``memory_encoder``,
    ``sam_mask_decoder``; :func:`bundle_graphs`).

    ``target_cpu`` says which CPUs the file must be right on: ``'any'`` (default) refuses a model whose fused
    int8 layers could saturate on AVX2-class CPUs; ``'vnni'`` allows it with a warning and says so in the
    manifest (:mod:`sam2_quant_plugin.int8`).
    """
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        raise FileExistsError(
            f"{out} already holds an ONNX bundle; refusing to overwrite. Fix: pick a new --out."
        )
    state = quant_state_or_none(model)
    if fp16 and state is not None:
        acts = [n for n, p in state.plans.items() if p.activation is not None]
        if acts:
            raise ExportError(
                f"--fp16 needs a float or weight-only model, but recipe {state.recipe.name!r} quantizes the "
                f"inputs of {len(acts)} layer(s), e.g. {acts[0]}. Fix: drop --fp16, or use a weight-only "
                "recipe (activation: null) with --weight-format matmulnbits for CUDA."
            )
    check_export_options(opset, weight_format)
    ready = ready_for_export(model)  # one frozen CPU copy and one saturation check for every graph
    int8_report = check_int8_target(ready, target_cpu)  # before anything is written
    nbits_widths = check_widths(nbits_widths)
    out.mkdir(parents=True, exist_ok=True)
    adapter = adapter_for(model)
    info = adapter.info(model)
    extra = bundle_graphs(model, graphs)
    specs = adapter.graphs(model, image_size=image_size, multimask=multimask, extra=extra)
    for spec in specs.values():
        if spec.check is not None:
            spec.check(model)
    files = {
        name: export_prepared(
            ready,
            int8_report,
            out / f"{name}.onnx",
            spec,
            opset=opset,
            weight_format=weight_format,
            target_cpu=target_cpu,
            nbits_widths=nbits_widths,
        )
        for name, spec in specs.items()
    }
    if fp16:  # float or weight-only graphs (checked above, before anything was written)
        for name in list(specs):
            files[f"{name}_fp16"] = to_fp16(files[name], out / f"{name}_fp16.onnx")
    metas = {k: _meta(p) for k, p in files.items()}
    manifest = {
        **manifest_header(model),
        "family": adapter.name,
        "weights": info.weights,
        "random_init": info.random_init,
        "seed": info.seed,
        "config": info.config,
        "image_size": image_size or info.image_size,
        "recipe": state.recipe.name if state is not None else None,
        # the full recipe, so `validate` can rebuild the reference from any recipe file, shipped or not
        "recipe_spec": state.recipe.to_dict() if state is not None else None,
        "weight_format": weight_format,
        **({"nbits_widths": list(nbits_widths)} if weight_format == "matmulnbits" else {}),
        "opset": opset,
        "multimask": multimask,
        "files": {k: p.name for k, p in files.items()},
        "bytes": {k: p.stat().st_size for k, p in files.items()},
        "weight_bytes_per_layer": {
            k: json.loads(m.get("sam2_quant.weight_bytes", "{}")) for k, m in metas.items()
        },
        # MatMulNBits only: the width each layer's codes are stored in (3-bit layers take 4: no 3-bit kernel)
        "stored_bits_per_layer": {
            k: json.loads(m["sam2_quant.stored_bits"])
            for k, m in metas.items()
            if "sam2_quant.stored_bits" in m
        },
        "target_cpu": target_cpu,
        "int8_saturation": _saturation_record(int8_report),
    }
    atomic_write_json(out / MANIFEST, manifest)
    if manifest["random_init"]:
        log.warning("bundle %s holds RANDOM-INIT weights (%s): not a trained model", out, info.weights)
    return manifest


def _saturation_record(report: SaturationReport | None) -> dict[str, object]:
    """The manifest's record of which fused int8 layers could saturate on AVX2-class CPUs."""
    if report is None:
        return {"safe": True, "risky_layers": [], "summary": FLOAT_INT8_NOTE}
    record = report.to_dict()
    record.pop("layers")
    return record


def _meta(path: Path) -> dict[str, str]:
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def bundle_graphs(model: nn.Module, graphs: Sequence[str] = ()) -> tuple[str, ...]:
    """The extra graphs a bundle of ``model`` gets: those its recipe's targets need (the adapter's
    ``target_graphs``; none for a float model), then ``graphs``, each once."""
    state = quant_state_or_none(model)
    target_graphs = hook(adapter_for(model), "target_graphs")
    needed = target_graphs(state.recipe.targets) if state is not None and target_graphs is not None else ()
    return tuple(dict.fromkeys((*needed, *graphs)))


def export_and_validate(
    float_model: nn.Module,
    model: nn.Module,
    images: Sequence[np.ndarray],
    out_dir: str | Path,
    *,
    image_size: int,
    points_per_side: int = 4,
    target_cpu: str = "any",
    graphs: Sequence[str] = (),
    extra_kw: dict[str, Any] | None = None,
) -> dict[str, object]:
    """Export ``model`` (frozen) and compare ORT with it (simulated and fused) and with the float model.

    The bundle holds the family's default graphs, the extra ones its recipe's targets need and ``graphs``
    (:func:`export_bundle`). Also names this host's int8 path and what an AVX2-class CPU would
    get (:func:`~..int8.avx2_parity`). Graphs the adapter's parity does not run are checked by its
    ``extra_parity`` hook (``extra_kw``: its options, e.g. SAM 2's ``video`` clip).
    """
    adapter = adapter_for(model)
    manifest = export_bundle(model, out_dir, image_size=image_size, target_cpu=target_cpu, graphs=graphs)
    out = Path(out_dir)
    files = {k: out / str(v) for k, v in dict(manifest["files"]).items()}  # type: ignore[call-overload]
    size, pps = image_size, points_per_side

    def ort_vs(m: nn.Module, optimization: str) -> dict[str, float | int | str]:
        return adapter.parity(
            m, files, images, optimization=optimization, image_size=size, points_per_side=pps
        )

    extra = hook(adapter, "extra_parity")
    return {
        "manifest": manifest,
        "host_int8_path": host_int8_path().to_dict(),
        "vs_torch_fake_quant_simulated": ort_vs(model, "disable"),
        "vs_torch_fake_quant_fused": ort_vs(model, "all"),
        "avx2_vs_torch_fake_quant": avx2_parity(
            ready_for_export(model), images, image_size=size, points_per_side=pps
        ),
        "vs_torch_float_fused": ort_vs(float_model, "all"),
        "kernels": {k: runtime_kernels(p) for k, p in files.items()},  # what the CPU EP runs, this CPU
        # the graphs parity does not run (SAM 2: memory graphs inside its video loop), fused, vs fake-quant
        "extra_vs_torch_fake_quant_fused": extra(model, files, optimization="all", **(extra_kw or {}))
        if extra is not None
        else {},
    }
