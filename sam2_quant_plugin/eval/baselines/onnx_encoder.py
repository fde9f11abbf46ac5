"""The float image encoder (``model.image_encoder``: Hiera trunk + FPN neck) as ONNX, and running it in
onnxruntime inside an otherwise-torch SAM 2 model.

The backbone graph (not the image-predictor graph of ``export_image_encoder``) because the video
predictor needs the encoder's raw ``backbone_fpn`` levels. The positional encodings the neck also
returns depend only on shapes; they are recomputed in torch.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from ...onnx.runtime import make_session
from .base import BuiltStudent

log = logging.getLogger(__name__)

INPUT = "image"


class OrtImageEncoder(nn.Module):
    """Drop-in for ``model.image_encoder`` that runs the trunk + neck in an onnxruntime session."""

    def __init__(self, session: ort.InferenceSession, position_encoding: nn.Module) -> None:
        super().__init__()
        self.session = session
        self.position_encoding = position_encoding

    def forward(self, sample: Tensor) -> dict:
        outs = self.session.run(None, {INPUT: sample.detach().float().cpu().numpy()})
        feats = [torch.from_numpy(np.ascontiguousarray(o)).to(sample.device) for o in outs]
        pos = [self.position_encoding(f).to(f.dtype) for f in feats]
        return {"vision_features": feats[-1], "vision_pos_enc": pos, "backbone_fpn": feats}


def ort_built_student(
    teacher: nn.Module,
    path: Path,
    *,
    a_bits: int | None,
    optimize: bool = True,
    notes: str = "",
    avg_w_bits: float | None = None,
) -> BuiltStudent:
    """The table row of an encoder ONNX file run in onnxruntime inside a copy of ``teacher``.

    ``avg_w_bits`` None: read from the graph (:func:`onnx_weight_bits`).
    """
    return BuiltStudent(
        model=ort_student(teacher, make_session(path, optimization="all" if optimize else "disable")),
        avg_w_bits=onnx_weight_bits(path) if avg_w_bits is None else avg_w_bits,
        a_bits=a_bits,
        size_bytes=path.stat().st_size,
        size_kind="onnx file",
        runtime="onnxruntime",
        onnx_path=path,
        notes=notes,
        ort_optimize=optimize,
    )


def ort_student(teacher: nn.Module, session: ort.InferenceSession) -> nn.Module:
    """A copy of ``teacher`` whose image encoder runs in ``session`` (decoder etc. stay torch float)."""
    pe = copy.deepcopy(teacher.image_encoder.neck.position_encoding)
    encoder = teacher.image_encoder
    teacher.image_encoder = nn.Identity()  # do not deep-copy the float encoder only to drop it
    try:
        student = copy.deepcopy(teacher)
    finally:
        teacher.image_encoder = encoder
    student.image_encoder = OrtImageEncoder(session, pe)
    return student.eval()


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

    A weight is an initializer feeding such a node directly (float), through ``DequantizeLinear``
    (its integer type), or the packed ``B`` of a ``MatMulNBits`` node (its ``bits`` attribute).
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
        if src is not None and src.op_type == "DequantizeLinear":
            name = src.input[0]
        if name in inits and inits[name].data_type in _BITS:
            n = float(np.prod(inits[name].dims))
            total, count = total + _BITS[inits[name].data_type] * n, count + n
    return total / count if count else float("nan")
