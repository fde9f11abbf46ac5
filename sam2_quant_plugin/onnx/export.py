"""Export a model (float, prepared or frozen) graph by graph: :func:`export_graph` traces one GraphSpec.

Freeze-then-lower: a prepared model is frozen first (its fake-quants become
:class:`~sam2_quant_plugin.fake_quant.frozen.FrozenFakeQuantize`), then traced by the TorchScript exporter
with :mod:`.symbolic` (any 2..8-bit range), then post-processed by :mod:`.lowering` (weights folded into
integer initializers). Files are written atomically and never overwritten.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import onnx
import torch
from torch import nn

from ..api import (
    INPUT_FQ,
    fake_quants,
    freeze,
    is_prepared,
    quant_state_or_none,
    quantizers,
    remove_input_hook,
)
from ..errors import ExportError
from ..fake_quant.frozen import FrozenFakeQuantize
from ..int8.deploy import safety_metadata
from ..int8.safety import UNSAFE_FIX, SaturationReport, check_target_cpu, saturation_report
from ..io.atomic import atomic_write
from ..models.adapter import GraphSpec
from ..models.info import model_info
from .attention_scale import fold_softmax_scale
from .dedupe import dedupe_constants
from .lowering import WEIGHT_FORMATS, lower_weights
from .matmulnbits import NBITS_WIDTHS, check_widths, stored_widths
from .placement import record_input_ranks
from .plan import PLAN_KEY, check_layers_present, lowered, plan_json, plan_scopes, record_scopes
from .symbolic import lowbit_symbolics, no_mha_fastpath

log = logging.getLogger(__name__)
MAX_TS_OPSET = 20  # the TorchScript exporter's highest opset; higher ones are reached by version conversion
INT4_MIN_OPSET = 21
MIN_OPSET, MAX_OPSET = 17, 21  # the opsets the exporter is tested with (LayerNormalization needs 17)


def ready_for_export(model: nn.Module) -> nn.Module:
    """The model as export sees it: float models as they are, prepared ones frozen (a copy), eval mode.

    Raises one :class:`ExportError` listing every quantizer that cannot be lowered (not frozen, or a range
    wider than 8 bits).
    """
    state = quant_state_or_none(model)
    if state is not None and not state.frozen:
        log.info("model is prepared but not frozen: freezing a copy before export")
        model = freeze(model)
    bad = []
    for name, fq in fake_quants(model).items():
        if not isinstance(fq, FrozenFakeQuantize):
            bad.append(f"{name} ({type(fq).__name__} is not frozen)")
        elif not (fq.quant_min >= -128 and fq.quant_max <= 255 and fq.quant_max - fq.quant_min <= 255):
            bad.append(f"{name} (range [{fq.quant_min}, {fq.quant_max}] does not fit 8 bits)")
    if bad:
        raise ExportError(
            f"{len(bad)} quantizer(s) cannot be lowered to ONNX: " + "; ".join(bad) + ". Fix: freeze(model) "
            "after calibration and keep every bit width in 2..8."
        )
    return _scope_input_quant(model).cpu().eval()  # export traces a CPU copy, wherever the model trains


def _forward_with_input_quant(self: nn.Module, x: torch.Tensor, *args: object, **kwargs: object) -> object:
    return type(self).forward(self, getattr(self, INPUT_FQ)(x), *args, **kwargs)


def _scope_input_quant(model: nn.Module) -> nn.Module:
    """A copy whose input fake-quants run inside their layer's forward instead of a pre-hook.

    The TorchScript exporter names nodes by module scope, and a pre-hook runs in the *parent's* scope;
    moving the call inside the layer names its Q/DQ ``/<layer>/input_fake_quant/...``, so the graph
    says which layer each activation quantizer belongs to.
    """
    model = copy.deepcopy(model)
    for mod in model.modules():
        if not hasattr(mod, INPUT_FQ) or not remove_input_hook(mod):
            continue
        mod.forward = types.MethodType(_forward_with_input_quant, mod)
    return model


def check_int8_target(model: nn.Module, target_cpu: str = "any") -> SaturationReport | None:
    """Refuse (``target_cpu='any'``) or warn (``'vnni'``) when a fused int8 layer can saturate on AVX2 CPUs.

    Returns the saturation report of a prepared model (None for a float one): its summary goes into the
    file's metadata, the whole report into a bundle's manifest.
    """
    check_target_cpu(target_cpu)
    if not is_prepared(model):
        return None
    report = saturation_report(model)
    if report.safe:
        return report
    if target_cpu == "any":
        raise ExportError(
            f"{report.summary()}: the file would compute wrong numbers there (target_cpu='any'). "
            f"{UNSAFE_FIX}."
        )
    log.warning(
        "!!! %s: this file is right only on CPUs with AVX512-VNNI / AVX-VNNI (target_cpu='vnni') !!!",
        report.summary(),
    )
    return report


def check_export_options(opset: int, weight_format: str) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is not supported: the exporter needs opset {MIN_OPSET}..{MAX_OPSET} "
            f"(LayerNormalization, per-channel QuantizeLinear). Fix: pass --opset {MIN_OPSET} (int4: 21)."
        )
    if weight_format not in WEIGHT_FORMATS:
        raise ExportError(f"weight_format={weight_format!r} is unknown; use one of {WEIGHT_FORMATS}")
    if weight_format == "int4" and opset < INT4_MIN_OPSET:
        raise ExportError(
            f"weight_format='int4' needs opset >= {INT4_MIN_OPSET} (DequantizeLinear on INT4 tensors), got "
            f"opset {opset}. Fix: pass opset={INT4_MIN_OPSET} (or --opset {INT4_MIN_OPSET})."
        )


def _refuse_existing(path: str | Path) -> Path:
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it. Fix: pass a new path.")
    return path


def _trace(
    wrapper: nn.Module,
    example: tuple[torch.Tensor, ...],
    names: tuple[tuple[str, ...], tuple[str, ...]],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int,
) -> tuple[onnx.ModelProto, dict[str, int], dict[nn.Module, set[str]]]:
    """The traced graph, its Linears' input ranks and the node scope(s) of each module it called."""
    buf = io.BytesIO()
    ts_opset = min(opset, MAX_TS_OPSET)
    with (
        torch.no_grad(),
        lowbit_symbolics(ts_opset),
        no_mha_fastpath(),
        warnings.catch_warnings(),
        record_input_ranks(wrapper) as ranks,
        record_scopes() as module_scopes,
    ):
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(
            wrapper,
            example,
            buf,  # type: ignore[arg-type]  # the TorchScript exporter (dynamo=False) writes to file objects
            dynamo=False,
            opset_version=ts_opset,
            input_names=list(names[0]),
            output_names=list(names[1]),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if opset > ts_opset:
        proto = onnx.version_converter.convert_version(proto, opset)
    return proto, ranks, module_scopes


def _finish(
    traced: tuple[onnx.ModelProto, dict[str, int], dict[nn.Module, set[str]]],
    model: nn.Module,
    path: str | Path,
    roots: tuple[str, ...],
    weight_format: str,
    extra_meta: dict[str, str] | None = None,
    nbits_widths: Sequence[int] = NBITS_WIDTHS,
    report: SaturationReport | None = None,
) -> Path:
    """Lower, check and write a traced graph. ``report``: the model's saturation report (None: float); the
    file records it for the layers lowered in this graph: whether one can saturate on AVX2 (``make_session``
    reads it) and the summary."""
    proto, ranks, module_scopes = traced
    path = _refuse_existing(path)
    check_layers_present(proto, model, module_scopes, roots)
    plan = quantizers(model) if is_prepared(model) else {}
    scopes = plan_scopes(plan.values(), module_scopes)
    ranks = {k.removeprefix("model."): v for k, v in ranks.items()}
    proto, sizes = lower_weights(proto, weight_format, scopes, ranks, nbits_widths)
    fold_softmax_scale(proto, scopes)
    stored = stored_widths(proto)
    if stored:
        extra_meta = {**(extra_meta or {}), "sam2_quant.stored_bits": json.dumps(stored)}
        wider = {q.layer: (q.bits, stored[q.layer]) for q in plan.values() if stored.get(q.layer, 0) > q.bits}
        if wider:
            log.info(
                "%d layer(s) stored wider than their bits (MatMulNBits has kernels of %s bits only): %s",
                len(wider),
                "/".join(map(str, nbits_widths)),
                ", ".join(f"{k} {b}->{s}" for k, (b, s) in list(wider.items())[:6]),
            )
    in_graph = lowered(proto, scopes)
    meta = {
        PLAN_KEY: plan_json(in_graph),
        **safety_metadata(report, (q.layer for q in in_graph)),
        "sam2_quant.weights": model_info(model).weights,
        "sam2_quant.image_size": str(model_info(model).image_size or ""),
        "sam2_quant.weight_format": weight_format,
        "sam2_quant.weight_bytes": json.dumps(sizes),
        **(extra_meta or {}),
    }
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **meta})
    dedupe_constants(proto)  # e.g. RoPE tables folded once per use: 26 of 32 MB of memory attention at 512 px
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, lambda tmp: onnx.save(proto, str(tmp)))
    log.info("wrote %s (%.1f MB, %s weights)", path, path.stat().st_size / 1e6, weight_format)
    return path


class ExportOptions(TypedDict, total=False):
    """The keyword options every graph export takes (see :func:`export_graph`)."""

    opset: int
    weight_format: str
    target_cpu: str
    nbits_widths: Sequence[int]


def export_graph(
    model: nn.Module,
    path: str | Path,
    spec: GraphSpec,
    *,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
    nbits_widths: Sequence[int] = NBITS_WIDTHS,
) -> Path:
    """Freeze-then-lower one graph: check options, refuse to overwrite, freeze a copy, trace
    ``spec.wrap(model)`` on ``spec.example(model)``, lower the weights, check every quantized layer under
    ``spec.roots``, write atomically. Model families describe their graphs as :class:`GraphSpec`.
    ``nbits_widths``: the MatMulNBits kernel widths the runtime has (weight format 'matmulnbits')."""
    kw = ExportOptions(
        opset=opset, weight_format=weight_format, target_cpu=target_cpu, nbits_widths=nbits_widths
    )
    return export_graphs(model, {"graph": (path, spec)}, **kw)["graph"]


def export_graphs(
    model: nn.Module,
    targets: Mapping[str, tuple[str | Path, GraphSpec]],
    *,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
    nbits_widths: Sequence[int] = NBITS_WIDTHS,
) -> dict[str, Path]:
    """:func:`export_graph` for several graphs of one model (``name -> (path, spec)``): the options, paths
    and specs are checked and the model is frozen, copied and saturation-checked once, before any file is
    written. Returns ``name -> path``."""
    check_export_options(opset, weight_format)
    nbits_widths = check_widths(nbits_widths)
    for path, spec in targets.values():
        _refuse_existing(path)
        if spec.check is not None:
            spec.check(model)
    ready = ready_for_export(model)
    report = check_int8_target(ready, target_cpu)
    kw = ExportOptions(
        opset=opset, weight_format=weight_format, target_cpu=target_cpu, nbits_widths=nbits_widths
    )
    return {name: export_prepared(ready, report, path, spec, **kw) for name, (path, spec) in targets.items()}


def export_prepared(
    model: nn.Module,
    report: SaturationReport | None,
    path: str | Path,
    spec: GraphSpec,
    *,
    opset: int,
    weight_format: str,
    target_cpu: str,
    nbits_widths: Sequence[int],
) -> Path:
    """Trace, lower and write one graph of ``model``, already :func:`ready_for_export` (options checked).

    ``report``: :func:`check_int8_target`'s report of ``model`` (its summary goes into the metadata). A
    bundle traces all its graphs on one such copy; a ``spec.wrap`` that patches the copy (SAM 2's memory
    attention: real-valued RoPE) must change only modules of its own graph.
    """
    wrapper, ex = spec.wrap(model), spec.example(model)
    names = spec.names(wrapper, ex) if callable(spec.names) else spec.names
    axes = {k: dict(v) for k, v in spec.axes.items()}
    traced = _trace(wrapper, ex, names, axes, opset)
    meta = {"sam2_quant.target_cpu": target_cpu}
    if weight_format == "matmulnbits":
        meta["sam2_quant.nbits_widths"] = json.dumps(list(nbits_widths))
    return _finish(traced, model, path, spec.roots, weight_format, meta, nbits_widths, report)


def export_module(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: str | Path,
    *,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
    nbits_widths: Sequence[int] = NBITS_WIDTHS,
) -> Path:
    """Export any (float, prepared or frozen) module whose ``forward`` takes ``example``; same lowering."""
    spec = GraphSpec(
        wrap=lambda m: m,
        example=lambda _: example,
        names=(input_names, output_names),
        axes=dynamic_axes or {},
    )
    kw = {
        "opset": opset,
        "weight_format": weight_format,
        "target_cpu": target_cpu,
        "nbits_widths": nbits_widths,
    }
    return export_graph(model, path, spec, **kw)  # type: ignore[arg-type]
