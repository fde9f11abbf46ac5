"""Methods that are recipes of this package: ``prepare_qat`` + ``calibrate`` + ``freeze`` (torch fake-quant).

Uniform PTQ baselines (every encoder Linear/Conv2d at the same bits, min-max ranges) and any recipe YAML
(our CDPQ or learnable-bit outputs, or a shipped name such as ``w8a8``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from ...api import freeze, prepare_qat, quant_state, quantizers, weight_bits_summary
from ...calibrate import calibrate
from ...recipe import LayerRule, Recipe, activation_spec, load_recipe, weight_spec
from ...sam2.video import runs_video
from .base import BuildContext, BuiltStudent, BundleSpec, Method, float_param_bytes

log = logging.getLogger(__name__)


def uniform_recipe(w_bits: int, a_bits: int | None = 8) -> Recipe:
    """Every image-encoder Linear/Conv2d: ``w_bits`` per-channel symmetric min-max weights, ``a_bits``
    per-tensor affine min-max inputs (None: weight-only)."""
    act = activation_spec(bits=a_bits, observer="minmax") if a_bits else None
    return Recipe(
        name=f"uniform-w{w_bits}" + (f"a{a_bits}" if a_bits else ""),
        description="uniform PTQ baseline (min-max)",
        targets=("image_encoder",),
        default=LayerRule(
            match="<default>", weight=weight_spec(bits=w_bits, observer="minmax"), activation=act
        ),
    )


def packed_encoder_bytes(model: nn.Module) -> int:
    """Image encoder size if stored packed: quantized weights at their bits, every other tensor float32."""
    total = float_param_bytes(model.image_encoder)
    for (name, kind), q in quantizers(model).items():
        if kind == "weight" and name.startswith("image_encoder."):
            weight = model.get_submodule(name).weight
            total -= weight.numel() * weight.element_size()
            total += weight.numel() * q.bits / 8
    return int(total)


def activation_bits(model: nn.Module) -> int | None:
    bits = {p.activation_bits for p in quant_state(model).plans.values() if p.activation_bits}
    return max(bits) if bits else None


class RecipeMethod(Method):
    """prepare_qat + calibrate (the context's photos) + freeze with a recipe."""

    def __init__(self, name: str, recipe: Recipe | str | Path, description: str = "") -> None:
        self.name = name
        self.recipe = recipe
        self.description = (
            description
            or f"this package, recipe {recipe if isinstance(recipe, (str, Path)) else recipe.name}"
        )

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        recipe = self.recipe if isinstance(self.recipe, Recipe) else load_recipe(self.recipe)
        model = prepare_qat(ctx.teacher, recipe)
        # the clip calibrates memory layers: a recipe without them keeps the photos-only calibration
        video = ctx.calib_video if runs_video(quant_state(model).plans) else None
        calibrate(model, list(ctx.calib_images), image_size=ctx.image_size, progress=False, video=video)
        frozen = freeze(model)
        bits = weight_bits_summary(frozen)
        return BuiltStudent(
            model=frozen,
            avg_w_bits=bits["avg_weight_bits"],
            a_bits=activation_bits(frozen),
            size_bytes=packed_encoder_bytes(frozen),
            size_kind="packed estimate",
            runtime="torch",
            notes=f"recipe {recipe.name}",
        )


class FloatMethod(Method):
    """The float teacher itself (a sanity row: IoU 1, cosine 1)."""

    name = "float"
    description = "float32 teacher (reference row)"
    bundle = BundleSpec()

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        return BuiltStudent(
            model=ctx.teacher,
            avg_w_bits=32.0,
            a_bits=None,
            size_bytes=float_param_bytes(ctx.teacher.image_encoder),
            size_kind="float32 params",
            runtime="torch",
        )


class InputNoiseMethod(Method):
    """The float teacher on inputs with seeded Gaussian noise: the metric's floor, not a quantizer.

    ``sigma`` is in normalized-input units (pixel std ~1), so 0.01 is ~0.6 grey levels of a 0-255 image,
    below JPEG noise. Whatever IoU this row scores is the most any student can be told apart by on the
    same weights and prompts: a quantizer whose IoU sits near it is as close as the metric can see.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        self.name = f"float-input-noise-{sigma:g}"
        self.description = (
            f"float32 teacher, input + N(0, {sigma:g}^2) (seeded): the metric's noise floor, not a quantizer"
        )

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        from ...sam2.forward import encode

        teacher, sigma, seed = ctx.teacher, self.sigma, ctx.seed

        def features(x: Tensor) -> dict:
            gen = torch.Generator().manual_seed(seed)
            return encode(teacher, x + sigma * torch.randn(x.shape, generator=gen))

        return BuiltStudent(
            model=features,
            avg_w_bits=32.0,
            a_bits=None,
            size_bytes=float_param_bytes(teacher.image_encoder),
            size_kind="float32 params",
            runtime="torch",
            notes="reference row: how far imperceptible input noise moves the metric",
            timed=False,
        )
