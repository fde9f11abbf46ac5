"""Per-layer bits survive export: ranges read from the file's plan, int8/int4 folding, ORT parity (fast)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from sam2_quant_plugin.errors import ExportError
from sam2_quant_plugin.fake_quant.frozen import FrozenFakeQuantize
from sam2_quant_plugin.numerics import qrange
from sam2_quant_plugin.onnx import make_session, quant_ranges, weight_bytes
from sam2_quant_plugin.onnx.export import export_module
from tests.onnx._models import MIXED_BITS, example, frozen, mixed_recipe

pytestmark = pytest.mark.onnx


@pytest.fixture(scope="module")
def mixed() -> torch.nn.Module:
    return frozen(mixed_recipe())


def _export(model: torch.nn.Module, path, **kw):  # type: ignore[no-untyped-def]
    return export_module(model, (example(),), path, input_names=("x",), output_names=("y",), **kw)


def _ort_vs_torch(model: torch.nn.Module, path, optimization: str) -> float:  # type: ignore[no-untyped-def]
    x = example()
    with torch.no_grad():
        ref = model(x).numpy()
    out = make_session(path, optimization=optimization).run(None, {"x": x.numpy()})[0]
    return float(np.abs(out - ref).max())


@pytest.mark.parametrize("fmt", ["qdq", "int8"])
def test_every_layer_range_matches_recipe(mixed, tmp_path, fmt) -> None:  # type: ignore[no-untyped-def]
    path = _export(mixed, tmp_path / "m.onnx", weight_format=fmt)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ranges = quant_ranges(proto)
    expected = {}
    for layer, (w, a) in MIXED_BITS.items():
        expected[(layer, "weight")] = qrange(w, signed=True, narrow=True)
        if a:
            expected[(layer, "activation")] = qrange(a, signed=False)
    assert {k: (r.qmin, r.qmax) for k, r in ranges.items()} == expected
    assert {k: r.bits for k, r in ranges.items()} == {
        k: (MIXED_BITS[k[0]][0] if k[1] == "weight" else MIXED_BITS[k[0]][1]) for k in expected
    }
    assert _ort_vs_torch(mixed, path, "disable") < 1e-5  # simulated: bit-exact up to float rounding


def test_int8_fold_stores_codes_in_range_and_shrinks_file(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    qdq = _export(mixed, tmp_path / "qdq.onnx", weight_format="qdq")
    int8 = _export(mixed, tmp_path / "int8.onnx", weight_format="int8")
    proto = onnx.load(str(int8))
    inits = {t.name: t for t in proto.graph.initializer}
    ranges = quant_ranges(proto)
    for layer in MIXED_BITS:
        codes = numpy_helper.to_array(inits[f"{layer}.weight_q"])
        r = ranges[(layer, "weight")]
        assert codes.dtype == np.int8
        assert r.qmin <= codes.min()
        assert codes.max() <= r.qmax
    assert not any(
        t.data_type == onnx.TensorProto.FLOAT and "weight" in t.name and t.dims[0] > 8
        for t in proto.graph.initializer
    )
    sizes = weight_bytes(proto)
    assert sizes["fc1"] == 64 * 16
    assert int8.stat().st_size < qdq.stat().st_size


def test_int4_needs_opset_21(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="opset >= 21"):
        _export(mixed, tmp_path / "x.onnx", weight_format="int4", opset=17)
    assert not (tmp_path / "x.onnx").exists()


def test_int4_fold_runs_in_ort(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _export(mixed, tmp_path / "int4.onnx", weight_format="int4", opset=21)
    proto = onnx.load(str(path))
    types = {t.name: t.data_type for t in proto.graph.initializer}
    assert types["fc2.weight_q"] == onnx.TensorProto.INT4
    assert types["head.weight_q"] == onnx.TensorProto.INT4
    assert types["fc1.weight_q"] == onnx.TensorProto.INT8  # 6-bit range does not fit int4
    # Packed two codes per byte: the bytes per layer are the real payload, half of int8's.
    sizes = weight_bytes(proto)
    numel = mixed.get_submodule("fc2").weight.numel()
    assert sizes["fc2"] == (numel + 1) // 2
    assert sizes["fc1"] == mixed.get_submodule("fc1").weight.numel()
    assert _ort_vs_torch(mixed, path, "disable") < 1e-5


def test_unlowerable_layers_are_listed_in_one_error(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import copy

    bad = copy.deepcopy(mixed)
    for name in ("fc1", "head"):
        fq = bad.get_submodule(name).weight_fake_quant
        wide = FrozenFakeQuantize(fq.scale, fq.zero_point, 8, True, ch_axis=0)
        wide.quant_min, wide.quant_max = -512, 511  # a 10-bit range
        bad.get_submodule(name).weight_fake_quant = wide
    with pytest.raises(
        ExportError, match=r"2 quantizer\(s\).*fc1\.weight_fake_quant.*head\.weight_fake_quant"
    ):
        _export(bad, tmp_path / "bad.onnx")


def test_never_overwrites(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _export(mixed, tmp_path / "m.onnx")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        _export(mixed, path)
    assert path.read_bytes() == before


def test_matmulnbits_weight_only_matches_torch(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _export(mixed, tmp_path / "nbits.onnx", weight_format="matmulnbits")
    proto = onnx.load(str(path))
    nbits = {n.name.split("/")[1]: n for n in proto.graph.node if n.op_type == "MatMulNBits"}
    assert set(nbits) == {"fc1", "fc2", "head"}  # every Linear; the conv stays DequantizeLinear
    bits = {k: next(a.i for a in n.attribute if a.name == "bits") for k, n in nbits.items()}
    assert bits == {"fc1": 8, "fc2": 4, "head": 4}
    assert quant_ranges(proto)[("fc2", "weight")].bits == 4  # ranges still readable
    assert _ort_vs_torch(mixed, path, "disable") < 1e-4
