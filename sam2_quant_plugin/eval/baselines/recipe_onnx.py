"""A recipe of this package as deployed: frozen model ->
:func:`sam2_quant_plugin.onnx.export.export_image_encoder` (weights folded into int8 / int4 initializers)
-> onnxruntime CPU EP with default optimisations.

That graph is the image-predictor encoder (``image -> image_embed, high_res_feats_0/1``), so the student
is a features callable decoded by the teacher's float decoder; SAM 2's video code needs the raw backbone
levels, hence no video column for these rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...api import weight_bits_summary
from ...recipe import Recipe
from .base import BuildContext, BuiltStudent, Method
from .onnx_encoder import make_session
from .torch_recipe import RecipeMethod, activation_bits

log = logging.getLogger(__name__)


class OrtFeatures:
    """``x [1, 3, S, S] -> {"image_embed", "high_res_feats"}`` from an ``export_image_encoder`` ONNX."""

    def __init__(self, session: object) -> None:
        self.session = session

    def __call__(self, x: Tensor) -> dict:
        embed, hr0, hr1 = (
            torch.from_numpy(np.ascontiguousarray(o))
            for o in self.session.run(None, {"image": x.detach().float().cpu().numpy()})
        )
        return {"image_embed": embed, "high_res_feats": [hr0, hr1]}


def float_encode_onnx(ctx: BuildContext) -> Path:
    """The float teacher through the same exporter (the latency reference for these rows), made once."""
    from ...onnx.export import export_image_encoder

    path = ctx.work_dir / "float_encode_path.onnx"
    if not path.exists():
        export_image_encoder(ctx.teacher, path, image_size=ctx.image_size)
    return path


class RecipeOnnxMethod(Method):
    """prepare_qat + calibrate + freeze with a recipe, then the package's ONNX export, run in onnxruntime."""

    def __init__(self, name: str, recipe: Recipe | str | Path, description: str = "") -> None:
        self.name, self.recipe = name, recipe
        self._torch = RecipeMethod(name, recipe)
        self.description = description or f"{self._torch.description}, exported (sam2_quant onnx), ORT CPU EP"

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        from ...onnx.export import export_image_encoder

        frozen = self._torch.make_student(ctx).model
        bits = weight_bits_summary(frozen)
        low = min((p.weight_bits or 8) for p in frozen.sam2_quant_state.plans.values())
        fmt, opset = ("int4", 21) if low <= 4 else ("int8", 17)
        path = export_image_encoder(
            frozen,
            ctx.work_dir / f"{self.name}.onnx",
            image_size=ctx.image_size,
            opset=opset,
            weight_format=fmt,
        )
        return BuiltStudent(
            model=OrtFeatures(make_session(path)),
            avg_w_bits=bits["avg_weight_bits"],
            a_bits=activation_bits(frozen),
            size_bytes=path.stat().st_size,
            size_kind="onnx file",
            runtime="onnxruntime",
            onnx_path=path,
            notes=f"sam2_quant export, {fmt} weights, opset {opset}; latency vs the float export",
            float_onnx=float_encode_onnx(ctx),
        )
