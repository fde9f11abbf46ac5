"""Export is handed the plan: files carry it in their metadata, lowering finds nodes by exact scope."""

from __future__ import annotations

import copy
import json
import types
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from sam2_quant_plugin import FrozenFakeQuantize, calibrate, freeze, prepare_qat, quantizers
from sam2_quant_plugin.errors import ExportError
from sam2_quant_plugin.models import GraphSpec
from sam2_quant_plugin.onnx import PLAN_KEY, make_session, quant_ranges, read_plan
from sam2_quant_plugin.onnx.export import export_graph, export_module
from sam2_quant_plugin.onnx.lowering import lower_weights
from sam2_quant_plugin.onnx.matmulnbits import to_matmulnbits
from sam2_quant_plugin.onnx.plan import QuantRange, plan_scopes, quantizer_of
from sam2_quant_plugin.recipe import LayerRule, Recipe, activation_spec, weight_spec
from tests._utils import make_tiny_sam2_like, tiny_input
from tests.onnx._models import MIXED_BITS, TinyNet, example, frozen, mixed_recipe

pytestmark = pytest.mark.onnx
QKV0 = "image_encoder.trunk.blocks.0.attn.qkv"


@pytest.fixture(scope="module")
def mixed() -> nn.Module:
    return frozen(mixed_recipe())


def _export(model: nn.Module, path, x: torch.Tensor | None = None, **kw):  # type: ignore[no-untyped-def]
    x = example() if x is None else x
    return export_module(model, (x,), path, input_names=("x",), output_names=("y",), **kw)


def _recorded(qs: object) -> dict[nn.Module, set[str]]:
    """The scopes tracing records for TinyNet (called itself: its layers' paths, ``/`` for ``.``)."""
    return {q.module: {"/" + q.module_name.replace(".", "/")} for q in qs}  # type: ignore[attr-defined]


def _ort_max_diff(model: nn.Module, path, x: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        ref = model(x).numpy()
    out = make_session(path, optimization="disable").run(None, {"x": x.numpy()})[0]
    return float(np.abs(out - ref).max())


@pytest.mark.parametrize(("fmt", "opset"), [("int8", 17), ("matmulnbits", 17), ("int4", 21)])
def test_file_carries_the_accessors_plan(tmp_path, fmt, opset) -> None:  # type: ignore[no-untyped-def]
    """Real SAM 2 names (``blocks.0``, ``layers.0``), a per-group layer, weight-only and W7A8 layers."""
    recipe = Recipe(
        name="tiny-plan",
        default=LayerRule("<default>", weight_spec(bits=7), activation_spec(bits=8, observer="minmax")),
        rules=(
            LayerRule(QKV0, weight_spec(bits=4, granularity="per_group", group_size=16), None),
            LayerRule("re:sam_mask_decoder\\..*", weight_spec(bits=3), None),
        ),
    )
    x = tiny_input(1)
    model = freeze(calibrate(prepare_qat(make_tiny_sam2_like(), recipe), forward_loop=lambda m: m(x)))
    path = _export(model, tmp_path / "m.onnx", x, weight_format=fmt, opset=opset)
    proto = onnx.load(str(path))
    view = quantizers(model)
    plan = json.loads({p.key: p.value for p in proto.metadata_props}[PLAN_KEY])
    assert plan == {layer: {k: q.to_dict() for (n, k), q in view.items() if n == layer} for layer, _ in view}
    assert read_plan(proto) == plan
    ranges = quant_ranges(proto)
    assert ranges == {k: QuantRange.from_dict(k[0], k[1], q.to_dict()) for k, q in view.items()}
    assert ranges[(QKV0, "weight")] == QuantRange(QKV0, "weight", 4, -7, 7, True, "per_group", 16)
    assert _ort_max_diff(model, path, x) < 1e-4


def test_float_export_holds_an_empty_plan(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proto = onnx.load(str(_export(TinyNet().eval(), tmp_path / "f.onnx")))
    assert read_plan(proto) == {}
    assert quant_ranges(proto) == {}
    assert PLAN_KEY in {p.key for p in proto.metadata_props}


class _Decoy(nn.Module):
    """Holds a frozen fake-quant under torch.ao's weight-quantizer name, though no recipe put it there."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1.0, 1.0, 8))
        self.weight_fake_quant = FrozenFakeQuantize(torch.tensor([0.25]), torch.tensor([0]), 4, True)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.weight_fake_quant(self.weight)


class _DecoyNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.decoy = _Decoy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoy(super().forward(x))


def test_a_weight_fake_quant_outside_the_plan_is_not_taken_for_a_layer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = prepare_qat(_DecoyNet().eval(), mixed_recipe())
    model = freeze(calibrate(q, forward_loop=lambda m: m(example(8)), progress=False))
    path = _export(model, tmp_path / "d.onnx", weight_format="int8")
    proto = onnx.load(str(path))
    names = {n.name for n in proto.graph.node}
    assert "/decoy/weight_fake_quant/DequantizeLinear" in names  # the look-alike scope is in the graph
    assert set(read_plan(proto)) == set(MIXED_BITS)  # ... but not in the plan
    assert "decoy.weight_q" not in {t.name for t in proto.graph.initializer}  # nor folded as a layer
    assert {f"{n}.weight_q" for n in MIXED_BITS} <= {t.name for t in proto.graph.initializer}
    assert _ort_max_diff(model, path, example()) < 1e-5


def test_nodes_belong_to_a_quantizer_by_exact_scope(mixed) -> None:  # type: ignore[no-untyped-def]
    info = quantizers(mixed)[("fc1", "weight")]
    scopes = plan_scopes(quantizers(mixed).values(), {info.module: {"/model/fc1/weight_fake_quant"}})
    assert scopes == {"/model/fc1/weight_fake_quant": info}  # only what tracing recorded

    def node(name: str) -> onnx.NodeProto:
        return helper.make_node("DequantizeLinear", ["a", "b"], ["c"], name=name)

    assert quantizer_of(node("/model/fc1/weight_fake_quant/DequantizeLinear"), scopes) == info
    for other in (
        "/fc1/weight_fake_quant/DequantizeLinear",  # another root
        "/model/x/fc1/weight_fake_quant/DequantizeLinear",  # a module that merely ends the same way
        "/model/fc1/weight_fake_quant/inner/DequantizeLinear",
        "/model/fc2/weight_fake_quant/DequantizeLinear",
    ):
        assert quantizer_of(node(other), scopes) is None, other


class _TrunkOnly(nn.Module):
    """Calls the trunk and the decoder straight from the wrapper: ``model`` and ``image_encoder`` never run,
    so the exporter's scopes (``/trunk/blocks.0/...``) are not the layers' module paths."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.model.image_encoder
        return self.model.sam_mask_decoder(enc.neck(enc.trunk(x)))


def test_layers_are_found_whichever_ancestors_ran(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = tiny_input(1)
    recipe = Recipe(name="w7a8", default=LayerRule("<default>", weight_spec(bits=7), activation_spec(bits=8)))
    model = freeze(calibrate(prepare_qat(make_tiny_sam2_like(), recipe), forward_loop=lambda m: m(x)))
    names = (("x",), ("y",))
    path = export_graph(
        model, tmp_path / "t.onnx", GraphSpec(_TrunkOnly, lambda _: (x,), names), weight_format="int8"
    )
    proto = onnx.load(str(path))
    assert "/trunk/blocks.0/attn/qkv/weight_fake_quant/DequantizeLinear" in {n.name for n in proto.graph.node}
    assert set(quant_ranges(proto)) == set(quantizers(model))  # full layer names, from the plan
    assert {f"{n}.weight_q" for n, _ in quantizers(model)} <= {t.name for t in proto.graph.initializer}
    assert _ort_max_diff(model, path, x) < 1e-4


def test_a_layer_whose_fake_quant_did_not_run_is_refused(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(mixed)
    head = bad.get_submodule("head")
    head.forward = types.MethodType(lambda self, x: nn.functional.linear(x, self.weight, self.bias), head)
    with pytest.raises(ExportError, match=r"1 quantized layer input.* not lowered.*: head \(weight\)"):
        _export(bad, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_matmulnbits_bits_come_from_the_plan(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """4-bit codes under an 8-bit plan are stored as 8 bits: the width is the plan's, not the codes'."""
    proto = onnx.load(str(_export(mixed, tmp_path / "i8.onnx", weight_format="int8")))
    codes = numpy_helper.to_array({t.name: t for t in proto.graph.initializer}["fc2.weight_q"])
    assert codes.min() >= -8
    assert codes.max() <= 7  # would fit MatMulNBits' 4 bits
    view = quantizers(mixed)
    as8 = {**view, ("fc2", "weight"): replace(view[("fc2", "weight")], bits=8, qmin=-127, qmax=127)}
    proto, _ = to_matmulnbits(proto, plan_scopes(as8.values(), _recorded(as8.values())))
    bits = {
        n.name.split("/")[1]: next(a.i for a in n.attribute if a.name == "bits")
        for n in proto.graph.node
        if n.op_type == "MatMulNBits"
    }
    assert bits == {"fc1": 8, "fc2": 8, "head": 2}


def test_lowering_refuses_a_graph_that_disagrees_with_the_plan(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proto = onnx.load(str(_export(mixed, tmp_path / "qdq.onnx", weight_format="qdq")))  # chains unfolded
    view = quantizers(mixed)
    wrong = {**view, ("fc2", "weight"): replace(view[("fc2", "weight")], bits=8, qmin=-127, qmax=127)}
    with pytest.raises(ExportError, match=r"fc2: .*\[-7, 7\].*\[-127, 127\]"):
        lower_weights(proto, "int8", plan_scopes(wrong.values(), _recorded(wrong.values())))
