"""eval.baselines.registry: names and NAME=PATH recipes."""

from __future__ import annotations

import pytest

from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.eval.baselines.ort_rtn import OrtRtnMethod
from sam2_quant_plugin.eval.baselines.recipe_onnx import RecipeOnnxMethod
from sam2_quant_plugin.eval.baselines.registry import DEFAULT_METHODS, make_methods
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
