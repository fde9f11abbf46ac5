"""The one method registry of ``sam2-quant eval`` and ``sam2-quant bench``: names and how to build them.

``eval`` builds a method's student (torch, or its encoder ONNX file in onnxruntime) and scores it;
``bench`` exports the methods that have a :class:`~.base.BundleSpec` as whole ONNX bundles and times them.
Recipe files join eval as ``NAME=PATH``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ...errors import RecipeError
from .base import BundleSpec, Method
from .nncf_methods import NncfCompressMethod, NncfQuantizeMethod
from .ort_dynamic import OrtDynamicMethod
from .ort_rtn import FloatFp16Method, OrtRtnMethod
from .ort_static import OrtStaticMethod
from .recipe_onnx import RecipeAvx2Method, RecipeOnnxMethod
from .torch_recipe import FloatMethod, InputNoiseMethod, RecipeMethod, uniform_recipe

#: shipped recipes whose int8 files are right only on VNNI CPUs (bench exports them with target_cpu='vnni')
VNNI_ONLY = {"w8a8_vnni"}


def _ours_onnx(name: str, recipe: str, fmt: str | None = None, fp16: bool = False) -> RecipeOnnxMethod:
    """A shipped recipe as deployed: eval runs its encoder ONNX, bench its whole bundle (same format)."""
    bundle_fmt = fmt or "int8"
    bundle = BundleSpec(
        recipe,
        bundle_fmt,
        21 if bundle_fmt == "int4" else 17,
        fp16=fp16,
        target_cpu="vnni" if recipe in VNNI_ONLY else "any",
    )
    return RecipeOnnxMethod(name, recipe, weight_format=fmt, fp16=fp16, bundle=bundle)


METHODS: dict[str, Callable[[], Method]] = {
    "float": FloatMethod,
    "float-input-noise-0.01": lambda: InputNoiseMethod(0.01),
    "torch-ptq-w8a8": lambda: RecipeMethod(
        "torch-ptq-w8a8", uniform_recipe(8, 8), "uniform torch.ao PTQ, W8 per-channel / A8, min-max"
    ),
    "torch-ptq-w4a8": lambda: RecipeMethod(
        "torch-ptq-w4a8", uniform_recipe(4, 8), "uniform torch.ao PTQ, W4 per-channel / A8, min-max"
    ),
    "ours-w8a8": lambda: RecipeMethod("ours-w8a8", "w8a8", "this package's shipped w8a8 recipe"),
    "ours-w8a8-ort": lambda: _ours_onnx("ours-w8a8-ort", "w8a8"),
    "ours-w8a8-fidelity": lambda: RecipeMethod(
        "ours-w8a8-fidelity", "w8a8_fidelity", "this package's w8a8_fidelity recipe"
    ),
    "ours-w8a8-fidelity-ort": lambda: _ours_onnx("ours-w8a8-fidelity-ort", "w8a8_fidelity"),
    "ours-w8a8-vnni": lambda: RecipeMethod(
        "ours-w8a8-vnni", "w8a8_vnni", "full 8-bit weights (the old default): right only on VNNI CPUs"
    ),
    "ours-w8a8-vnni-ort": lambda: _ours_onnx("ours-w8a8-vnni-ort", "w8a8_vnni"),
    "ours-w8a8-vnni-avx2": lambda: RecipeAvx2Method("ours-w8a8-vnni-avx2", "w8a8_vnni"),
    "ours-w8a8-video": lambda: RecipeMethod(
        "ours-w8a8-video",
        "w8a8_video",
        "w8a8 on the image encoder, memory attention and memory encoder (video-calibrated)",
    ),
    "ours-w8a8-video-ort": lambda: RecipeOnnxMethod(
        "ours-w8a8-video-ort",
        "w8a8_video",
        "w8a8_video exported: encoder, memory attention and memory encoder graphs all run in onnxruntime "
        "(CPU EP) inside SAM 2's video loop",
    ),
    "ours-w4a8": lambda: RecipeMethod("ours-w4a8", "w4a8", "this package's shipped w4a8 recipe (MSE 4-bit)"),
    "ours-w4a8-ort": lambda: RecipeOnnxMethod("ours-w4a8-ort", "w4a8"),
    "ort-static-minmax-fused": lambda: OrtStaticMethod("minmax", fused=True),
    "ort-static-minmax-sim": lambda: OrtStaticMethod("minmax", fused=False),
    "ort-static-percentile-fused": lambda: OrtStaticMethod("percentile", fused=True),
    "ort-static-percentile-sim": lambda: OrtStaticMethod("percentile", fused=False),
    "ort-static-minmax-mmconv-rr-fused": lambda: OrtStaticMethod(
        "minmax", fused=True, matmul_conv_only=True, reduce_range=True
    ),
    "ort-dynamic-rr": lambda: OrtDynamicMethod(reduce_range=True),
    "ort-rtn-int4-g32": lambda: OrtRtnMethod(32),
    "nncf-ptq-int8": NncfQuantizeMethod,
    "nncf-wc-int8": lambda: NncfCompressMethod(8),
    "nncf-wc-int4-g32": lambda: NncfCompressMethod(4, 32),
    "nncf-wc-int4-int8-mixed-r80": lambda: NncfCompressMethod(4, 32, mixed_ratio=0.8),
    "learnable": lambda: RecipeMethod(
        "learnable",
        "learnable",
        "this package's learnable-bit recipe (shipped, untrained: bits stay at init)",
    ),
    # bench's bundles that eval also runs when named (their fp16 graphs are slow on the CPU EP)
    "float-fp16": FloatFp16Method,
    "ours-mixed-int4-ort": lambda: _ours_onnx("ours-mixed-int4-ort", "mixed", "int4"),
    "ours-mixed-nbits-fp16-ort": lambda: _ours_onnx(
        "ours-mixed-nbits-fp16-ort", "mixed", "matmulnbits", True
    ),
    "ours-w4-g32-nbits-fp16-ort": lambda: _ours_onnx(
        "ours-w4-g32-nbits-fp16-ort", "w4_g32", "matmulnbits", True
    ),
    "ours-w4-g32-gptq-nbits-fp16-ort": lambda: _ours_onnx(
        "ours-w4-g32-gptq-nbits-fp16-ort", "w4_g32_gptq", "matmulnbits", True
    ),
    # run when named: the video recipe with integer attention in the encoder and memory attention, deployed
    "ours-w8a8-video-attn-ort": lambda: RecipeOnnxMethod(
        "ours-w8a8-video-attn-ort",
        "w8a8_video_attn",
        "w8a8_video_attn exported (uint8 attention products in the encoder and memory attention): encoder "
        "and memory graphs on onnxruntime (CPU EP) inside SAM 2's video loop",
    ),
}

#: eval's rows when --methods is not given (the bench-only bundles above run when named)
DEFAULT_METHODS = tuple(METHODS)[: list(METHODS).index("learnable") + 1]
#: bench's variants when --variants is not given, in its table order
BENCH_METHODS = (
    "float",
    "float-fp16",
    "ours-w8a8-ort",
    "ours-w8a8-fidelity-ort",
    "ours-w8a8-vnni-ort",
    "ours-mixed-int4-ort",
    "ours-mixed-nbits-fp16-ort",
    "ours-w4-g32-nbits-fp16-ort",
    "ours-w4-g32-gptq-nbits-fp16-ort",
    "ort-rtn-int4-g32",
)
#: bench's former variant names -> registry names (still accepted by ``sam2-quant bench --variants``)
BENCH_ALIASES = {
    "fp16": "float-fp16",
    "w8a8": "ours-w8a8-ort",
    "w8a8-fidelity": "ours-w8a8-fidelity-ort",
    "w8a8-vnni": "ours-w8a8-vnni-ort",
    "mixed-int4": "ours-mixed-int4-ort",
    "mixed-nbits-fp16": "ours-mixed-nbits-fp16-ort",
    "w4-g32-nbits-fp16": "ours-w4-g32-nbits-fp16-ort",
    "w4-g32-gptq-nbits-fp16": "ours-w4-g32-gptq-nbits-fp16-ort",
    "ort-rtn-int4-fp16": "ort-rtn-int4-g32",
}
#: recipe-file twins: NAME-ort (deployed in onnxruntime), NAME-avx2 (int8 kernels of an AVX2 CPU, emulated)
TWINS = {"-ort": RecipeOnnxMethod, "-avx2": RecipeAvx2Method}


def _method(name: str, custom: dict[str, str]) -> Method:
    if name in custom:
        return RecipeMethod(name, custom[name], f"recipe {custom[name]}")
    for suffix, cls in TWINS.items():
        if name.endswith(suffix) and name.removesuffix(suffix) in custom:
            return cls(name, custom[name.removesuffix(suffix)])
    return METHODS[name]()


def unknown_bench_names(names: Sequence[str]) -> list[str]:
    """The ``names`` that are neither a registry method with a bundle nor a former bench name."""
    resolved = [BENCH_ALIASES.get(n, n) for n in names]
    return [n for n, r in zip(names, resolved) if r not in METHODS or METHODS[r]().bundle is None]


def bench_methods(names: Sequence[str], *, w8a8_recipe: str = "w8a8") -> dict[str, Method]:
    """Registry methods with a bundle by name (former bench names accepted, see :data:`BENCH_ALIASES`).

    ``w8a8_recipe`` replaces the recipe of ``ours-w8a8-ort``'s bundle (bench's ``--w8a8-recipe``).
    """
    unknown = unknown_bench_names(names)
    if unknown:
        raise RecipeError(
            f"unknown {unknown} (not a method with an ONNX bundle); known: {', '.join(BENCH_METHODS)} "
            f"(former names: {', '.join(BENCH_ALIASES)})"
        )
    out = {n: METHODS[n]() for n in (BENCH_ALIASES.get(n, n) for n in names)}
    w8a8 = out.get("ours-w8a8-ort")
    if w8a8 is not None and w8a8.bundle is not None and w8a8_recipe != "w8a8":
        target = "vnni" if w8a8_recipe in VNNI_ONLY else "any"
        w8a8.bundle = replace(w8a8.bundle, recipe=w8a8_recipe, target_cpu=target)
    return out


def make_methods(names: Sequence[str], recipes: Sequence[str] = ()) -> list[Method]:
    """Methods by name, then one :class:`RecipeMethod` per ``NAME=PATH`` (a recipe YAML, e.g. CDPQ's).

    A ``NAME=PATH`` whose name is also in ``names`` replaces that built-in row (e.g. ``learnable=my.yaml``);
    ``NAME-ort`` in ``names`` adds its deployed twin (exported, run in onnxruntime), ``NAME-avx2`` its int8
    layers as an AVX2 CPU without VNNI computes them (emulated).
    """
    custom: dict[str, str] = {}
    for spec in recipes:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise RecipeError(
                f"recipe spec must be NAME=PATH (e.g. cdpq=runs/cdpq/recipe.yaml), got {spec!r}"
            )
        custom[name] = path
    twins = {n for n in names for sfx in TWINS if n.endswith(sfx) and n.removesuffix(sfx) in custom}
    unknown = [n for n in names if n not in METHODS and n not in custom and n not in twins]
    if unknown:
        raise RecipeError(
            f"unknown method(s) {unknown}; known: {', '.join(METHODS)} (or pass NAME=PATH recipes)"
        )
    out = [_method(n, custom) for n in names]
    out += [RecipeMethod(n, p, f"recipe {p}") for n, p in custom.items() if n not in names]
    return out
