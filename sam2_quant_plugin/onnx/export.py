"""Export SAM 2 (float, prepared or frozen) as separate ONNX graphs: image encoder, decoder, memory attention.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from ..int8.safety import UNSAFE_FIX, SaturationReport, check_target_cpu, saturation_report
from ..io.atomic import atomic_write
from .lowering import WEIGHT_FORMATS, lower_weights
from .placement import record_input_ranks
from .plan import PLAN_KEY, check_layers_present, lowered, plan_json, plan_scopes, record_scopes
from .symbolic import lowbit_symbolics, no_mha_fastpath
from .wrappers import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    MEMORY_INPUTS,
    MEMORY_OUTPUTS,
    BackboneGraph,
    DecoderGraph,
    ImageEncoderGraph,
    MemoryAttentionGraph,
    decoder_example,
    encoder_example,
    memory_example,
)

log = logging.getLogger(__name__)
MAX_TS_OPSET = 20  # the TorchScript exporter's highest opset; higher ones are reached by version conversion
INT4_MIN_OPSET = 21
MIN_OPSET, MAX_OPSET = 17, 21  # the opsets the exporter is tested with (LayerNormalization needs 17)


Names = tuple[tuple[str, ...], tuple[str, ...]]


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
    return _scope_input_quant(model).eval()


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


FLOAT_INT8_NOTE = "float model: no int8 kernels"


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
) -> Path:
    proto, ranks, module_scopes = traced
    path = _refuse_existing(path)
    check_layers_present(proto, model, module_scopes, roots)
    scopes = plan_scopes(quantizers(model).values(), module_scopes) if is_prepared(model) else {}
    proto, sizes = lower_weights(
        proto, weight_format, scopes, {k.removeprefix("model."): v for k, v in ranks.items()}
    )
    meta = {
        PLAN_KEY: plan_json(lowered(proto, scopes)),
        "sam2_quant.weights": str(getattr(model, "sam2_quant_weights", "unknown")),
        "sam2_quant.image_size": str(getattr(model, "sam2_quant_image_size", "")),
        "sam2_quant.weight_format": weight_format,
        "sam2_quant.weight_bytes": json.dumps(sizes),
        **(extra_meta or {}),
    }
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **meta})
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, lambda tmp: onnx.save(proto, str(tmp)))
    log.info("wrote %s (%.1f MB, %s weights)", path, path.stat().st_size / 1e6, weight_format)
    return path


def _export_graph(
    model: nn.Module,
    path: str | Path,
    wrap: Callable[[nn.Module], nn.Module],
    example: Callable[[nn.Module], tuple[torch.Tensor, ...]],
    names: Names | Callable[[nn.Module, tuple[torch.Tensor, ...]], Names],
    roots: tuple[str, ...],
    *,
    opset: int,
    weight_format: str,
    axes: dict[str, dict[int, str]] | None = None,
    target_cpu: str = "any",
) -> Path:
    """Freeze-then-lower: check options, refuse to overwrite, freeze a copy, trace ``wrap(model)`` on
    ``example(model)``, lower the weights, check every quantized layer under ``roots``, write atomically."""
    check_export_options(opset, weight_format)
    _refuse_existing(path)
    model = ready_for_export(model)
    report = check_int8_target(model, target_cpu)
    int8_note = report.summary() if report is not None else FLOAT_INT8_NOTE
    wrapper, ex = wrap(model), example(model)
    if callable(names):
        names = names(wrapper, ex)
    traced = _trace(wrapper, ex, names, axes or {}, opset)
    meta = {"sam2_quant.target_cpu": target_cpu, "sam2_quant.int8_saturation": int8_note}
    return _finish(traced, model, path, roots, weight_format, meta)


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
) -> Path:
    """Export any (float, prepared or frozen) module whose ``forward`` takes ``example``; same lowering."""
    return _export_graph(
        model,
        path,
        lambda m: m,
        lambda _: example,
        (input_names, output_names),
        ("",),
        opset=opset,
        weight_format=weight_format,
        target_cpu=target_cpu,
        axes=dynamic_axes,
    )


def export_image_encoder(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
) -> Path:
    """Export ``image [1, 3, S, S] -> image_embed, high_res_feats_0, high_res_feats_1`` to ``path``."""
    kw = {"opset": opset, "weight_format": weight_format, "target_cpu": target_cpu}
    return _export_encoder(model, path, ImageEncoderGraph, (ENCODER_INPUTS, ENCODER_OUTPUTS), image_size, kw)


def _export_encoder(
    model: nn.Module,
    path: str | Path,
    wrap: Callable[[nn.Module], nn.Module],
    names: Names | Callable[[nn.Module, tuple[torch.Tensor, ...]], Names],
    image_size: int,
    kw: dict[str, Any],
) -> Path:
    """An image-in graph of the image encoder (``wrap`` picks the outputs), checked under image_encoder."""
    return _export_graph(
        model, path, wrap, lambda _: encoder_example(image_size), names, ("image_encoder",), **kw
    )


def _backbone_names(wrapper: nn.Module, example: tuple[torch.Tensor, ...]) -> Names:
    with torch.no_grad():
        n_out = len(wrapper(*example))
    return ENCODER_INPUTS, tuple(f"backbone_fpn_{i}" for i in range(n_out))


def export_backbone(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
) -> Path:
    """Export ``image [1, 3, S, S] -> backbone_fpn_0..k`` (the image encoder's raw FPN levels) to ``path``."""
    kw = {"opset": opset, "weight_format": weight_format, "target_cpu": target_cpu}
    return _export_encoder(model, path, BackboneGraph, _backbone_names, image_size, kw)


def export_decoder(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
    multimask: bool = False,
) -> Path:
    """Export prompt encoder + mask decoder: features + ``point_coords [1, N, 2]``, ``point_labels [1, N]``
    (int32) -> ``low_res_masks [1, M, S/4, S/4]``, ``iou_predictions [1, M]``; ``N`` is dynamic."""
    return _export_graph(
        model,
        path,
        lambda m: DecoderGraph(m, multimask),
        lambda m: decoder_example(m, image_size),
        (DECODER_INPUTS, DECODER_OUTPUTS),
        ("sam_mask_decoder", "sam_prompt_encoder"),
        opset=opset,
        weight_format=weight_format,
        target_cpu=target_cpu,
        axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
    )


def export_memory_attention(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    n_frames: int = 2,
    opset: int = 17,
    weight_format: str = "int8",
    target_cpu: str = "any",
) -> Path:
    """Export memory attention (real-valued RoPE required: ``patch_real_rope(model)`` first).

    ``current [HW, 1, C]``, ``current_pos``, ``memory [M, 1, Cm]``, ``memory_pos`` -> ``conditioned``;
    ``M`` (memory tokens) is dynamic in multiples of ``HW``.
    """
    from ..sam2.rope import RealRoPEAttention

    if not any(isinstance(m, RealRoPEAttention) for m in model.get_submodule("memory_attention").modules()):
        raise ExportError(
            "memory attention uses complex-valued RoPE, which does not export. Fix: call "
            "sam2_quant_plugin.sam2.rope.patch_real_rope(model) first."
        )
    return _export_graph(
        model,
        path,
        MemoryAttentionGraph,
        lambda m: memory_example(m, image_size, n_frames),
        (MEMORY_INPUTS, MEMORY_OUTPUTS),
        ("memory_attention",),
        opset=opset,
        weight_format=weight_format,
        target_cpu=target_cpu,
        axes={"memory": {0: "memory_tokens"}, "memory_pos": {0: "memory_tokens"}},
    )
