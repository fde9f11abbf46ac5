"""eval.baselines.registry: names and NAME=PATH recipes."""

from __future__ import annotations

import pytest

from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.eval.baselines.ort_rtn import OrtRtnMethod
from sam2_quant_plugin.eval.baselines.recipe_onnx import RecipeOnnxMethod
from sam2_quant_plugin.eval.baselines.registry import (
    BENCH_ALIASES,
    BENCH_METHODS,
    DEFAULT_METHODS,
    METHODS,
    bench_methods,
    make_methods,
)
from sam2_quant_plugin.eval.baselines.torch_recipe import RecipeMethod, uniform_recipe


def test_every_default_method_builds_with_its_name() -> None:
    assert [m.name for m in make_methods(DEFAULT_METHODS)] == list(DEFAULT_METHODS)


def test_onnxruntime_rtn_row() -> None:
    """onnxruntime's own MatMulNBits quantizer is a default row; its graph is the fp16 (CUDA EP) form."""
    assert "ort-rtn-int4-g32" in DEFAULT_METHODS
    (m,) = make_methods(["ort-rtn-int4-g32"])
    assert isinstance(m, OrtRtnMethod)
    assert m.block_size == 32
    assert "RTN" in m.description
    assert "fp16" in m.description
    assert OrtRtnMethod(64).name == "ort-rtn-int4-g64"


def test_recipe_specs_add_or_replace_rows() -> None:
    methods = make_methods(["float", "learnable"], ["learnable=my.yaml", "cdpq=c.yaml"])
    assert [m.name for m in methods] == ["float", "learnable", "cdpq"]
    assert isinstance(methods[1], RecipeMethod)
    assert methods[1].recipe == "my.yaml"


@pytest.mark.parametrize("bad", [["nope"]])
def test_unknown_method(bad: list[str]) -> None:
    with pytest.raises(RecipeError, match="unknown method"):
        make_methods(bad)


def test_ort_twin_of_a_recipe_file() -> None:
    methods = make_methods(["cdpq", "cdpq-ort"], ["cdpq=c.yaml"])
    assert isinstance(methods[1], RecipeOnnxMethod)
    assert methods[1].recipe == "c.yaml"


def test_bad_recipe_spec() -> None:
    with pytest.raises(RecipeError, match="NAME=PATH"):
        make_methods([], ["just-a-path.yaml"])


def test_uniform_recipe() -> None:
    r = uniform_recipe(4, 8)
    assert r.name == "uniform-w4a8"
    assert r.default.weight.bits == 4
    assert r.default.activation.bits == 8
    assert uniform_recipe(8, None).default.activation is None


def test_bench_and_eval_share_one_registry() -> None:
    """Every bench variant is an eval method (same name) with a bundle; former bench names are aliases."""
    methods = bench_methods(BENCH_METHODS)
    assert list(methods) == list(BENCH_METHODS)
    assert all(name in METHODS and m.name == name and m.bundle for name, m in methods.items())
    assert [m.name for m in make_methods(BENCH_METHODS)] == list(BENCH_METHODS)  # eval runs them too
    assert set(BENCH_ALIASES.values()) <= set(BENCH_METHODS)
    assert list(bench_methods(["w8a8", "fp16", "ort-rtn-int4-fp16"])) == [
        "ours-w8a8-ort",
        "float-fp16",
        "ort-rtn-int4-g32",
    ]
    vnni = bench_methods(["w8a8-vnni"])["ours-w8a8-vnni-ort"].bundle
    assert vnni is not None
    assert vnni.target_cpu == "vnni"
    mixed = bench_methods(["mixed-int4"])["ours-mixed-int4-ort"].bundle
    assert mixed is not None
    assert (mixed.recipe, mixed.weight_format, mixed.opset) == ("mixed", "int4", 21)
    w8 = bench_methods(["w8a8"], w8a8_recipe="w8a8_vnni")["ours-w8a8-ort"].bundle
    assert w8 is not None
    assert (w8.recipe, w8.target_cpu) == ("w8a8_vnni", "vnni")
    assert bench_methods(["w8a8"])["ours-w8a8-ort"].bundle.recipe == "w8a8"  # type: ignore[union-attr]
    with pytest.raises(RecipeError, match=r"unknown \['nncf-wc-int8'\]"):
        bench_methods(["nncf-wc-int8"])  # an eval-only method: no bundle


def test_default_eval_rows_are_unchanged_by_bench_methods() -> None:
    assert "float-fp16" not in DEFAULT_METHODS
    assert DEFAULT_METHODS[-1] == "learnable"
    assert len(DEFAULT_METHODS) == 27
