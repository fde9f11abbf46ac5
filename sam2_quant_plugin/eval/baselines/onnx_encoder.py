"""Table rows whose SAM 2 runs exported graphs in onnxruntime inside an otherwise-torch copy of the teacher.

The image encoder runs as the backbone graph (not the image-predictor graph of ``export_image_encoder``)
because the video predictor needs the encoder's raw ``backbone_fpn`` levels; rows over the memory path also
run the memory-attention and memory-encoder graphs (:mod:`sam2_quant_plugin.sam2.ort_modules`), so video J
is the deployed files' own.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from torch import nn

from ...onnx.runtime import make_session
from ...sam2.graphs import ENCODER_INPUTS
from ...sam2.ort_modules import (
    VIDEO_DROP_INS,
    OrtImageEncoder,
    check_drop_in_names,
    install_drop_ins,
)
from .base import BuiltStudent

log = logging.getLogger(__name__)
INPUT = ENCODER_INPUTS[0]  # the backbone graph's one input


def ort_built_student(
    teacher: nn.Module,
    path: Path,
    *,
    a_bits: int | None,
    optimize: bool = True,
    notes: str = "",
    avg_w_bits: float | None = None,
    memory: dict[str, Path] | None = None,
) -> BuiltStudent:
    """The table row of an encoder ONNX file run in onnxruntime inside a copy of ``teacher``.

    ``avg_w_bits`` None: read from the graph (:func:`onnx_weight_bits`). ``memory``: memory-path graph
    files by module name (``memory_attention``, ``memory_encoder``) that replace those modules too; the
    row's size stays the image encoder's file, as every row's.
    """
    level = "all" if optimize else "disable"
    sessions = {k: make_session(p, optimization=level) for k, p in (memory or {}).items()}
    return BuiltStudent(
        model=ort_student(teacher, make_session(path, optimization=level), sessions),
        avg_w_bits=onnx_weight_bits(path) if avg_w_bits is None else avg_w_bits,
        a_bits=a_bits,
        size_bytes=path.stat().st_size,
        size_kind="onnx file",
        runtime="onnxruntime",
        onnx_path=path,
        notes=notes,
        ort_optimize=optimize,
    )


def ort_student(
    teacher: nn.Module,
    session: ort.InferenceSession,
    memory: dict[str, ort.InferenceSession] | None = None,
) -> nn.Module:
    """A copy of ``teacher`` whose image encoder runs in ``session`` and each module named in ``memory``
    (``memory_attention``, ``memory_encoder``, ``sam_mask_decoder``) in its session; the rest stays torch
    float."""
    check_drop_in_names(memory or {})  # before the teacher's modules are swapped out below
    pe = copy.deepcopy(teacher.image_encoder.neck.position_encoding)
    keep = {n for n, cls in VIDEO_DROP_INS.items() if getattr(cls, "reads_replaced", False)}
    dropped = {
        name: getattr(teacher, name) for name in ("image_encoder", *(memory or {})) if name not in keep
    }
    for name in dropped:  # do not deep-copy float modules only to replace them
        setattr(teacher, name, nn.Identity())
    try:
        student = copy.deepcopy(teacher)
    finally:
        for name, mod in dropped.items():
            setattr(teacher, name, mod)
    student.image_encoder = OrtImageEncoder(session, pe)
    install_drop_ins(student, memory or {})
    return student.eval()


#: Ops between stored weight codes and their layer: DequantizeLinear, load_fold's Cast -> Sub -> Mul,
#: per-group Reshape, transposed weights.
_DEQUANTIZE_CHAIN = ("DequantizeLinear", "Cast", "Sub", "Mul", "Reshape", "Transpose")
_WEIGHT_OPS = {"Conv", "MatMul", "Gemm", "ConvTranspose", "MatMulInteger", "ConvInteger"}
_BITS = {
    onnx.TensorProto.INT8: 8,
    onnx.TensorProto.UINT8: 8,
    onnx.TensorProto.INT4: 4,
    onnx.TensorProto.UINT4: 4,
    onnx.TensorProto.FLOAT: 32,
    onnx.TensorProto.FLOAT16: 16,
}


def onnx_weight_bits(path: str | Path) -> float:
    """Parameter-weighted mean bits of the Conv/MatMul/Gemm weights of an ONNX graph.

    A weight is an initializer feeding such a node directly (float), through ``DequantizeLinear`` or
    the ``Cast -> [Sub ->] Mul`` of :mod:`~sam2_quant_plugin.onnx.load_fold` (its integer type), or the
    packed ``B`` of a ``MatMulNBits`` node (its ``bits`` attribute).
    """
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    total = count = 0.0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            n = float(attrs["K"] * attrs["N"])
            total, count = total + attrs["bits"] * n, count + n
            continue
        if node.op_type not in _WEIGHT_OPS or len(node.input) < 2:
            continue
        name = node.input[1]
        src = producer.get(name)
        while src is not None and src.op_type in _DEQUANTIZE_CHAIN:  # back to the stored codes
            name = src.input[0]
            src = producer.get(name)
        if name in inits and inits[name].data_type in _BITS:
            n = float(np.prod(inits[name].dims))
            total, count = total + _BITS[inits[name].data_type] * n, count + n
    return total / count if count else float("nan")
