"""Per-layer bits survive export: ranges read from the file's plan, int8/int4 folding, ORT parity (fast)."""

from __future__ import annotations

import json
from pathlib import Path

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


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


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
    assert bits == {"fc1": 8, "fc2": 4, "head": 2}  # 6 -> 8, 4 -> 4, 2 -> 2 (the kernel's widths)
    assert quant_ranges(proto)[("fc2", "weight")].bits == 4  # ranges still readable
    assert _ort_vs_torch(mixed, path, "disable") < 1e-4
    assert _ort_vs_torch(mixed, path, "all") < 1e-4


def test_matmulnbits_2bit_layers_take_2_bits_unless_the_runtime_lacks_them(mixed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    two = _export(mixed, tmp_path / "two.onnx", weight_format="matmulnbits")
    four = _export(mixed, tmp_path / "four.onnx", weight_format="matmulnbits", nbits_widths=(4, 8))
    sizes = {p: json.loads(_meta(p)["sam2_quant.weight_bytes"]) for p in (two, four)}
    head = mixed.get_submodule("head").weight
    n, k = head.shape
    blocks = -(-k // 32)
    assert sizes[two]["head"] == n * blocks * 32 * 2 // 8 + n * blocks * 4  # 2-bit codes + fp32 block scales
    assert sizes[four]["head"] == n * blocks * 32 * 4 // 8 + n * blocks * 4
    assert json.loads(_meta(four)["sam2_quant.nbits_widths"]) == [4, 8]
    assert json.loads(_meta(two)["sam2_quant.stored_bits"]) == {"fc1": 8, "fc2": 4, "head": 2}
    assert json.loads(_meta(four)["sam2_quant.stored_bits"])["head"] == 4
    assert _ort_vs_torch(mixed, four, "all") < 1e-4
    with pytest.raises(ExportError, match="8 must be among them"):
        _export(mixed, tmp_path / "bad.onnx", weight_format="matmulnbits", nbits_widths=(2, 4))


def test_pack_2_and_4_bits_little_endian_along_k() -> None:
    from sam2_quant_plugin.onnx.matmulnbits import pack

    codes = np.array([[-2, 1, 0, -1, 1, 1, -2, 0]], dtype=np.int8).T  # K=8, N=1, 2-bit signed
    packed, n_blocks = pack(codes, 2, 8)
    u = codes[:, 0].astype(int) + 2  # zero point 2
    assert n_blocks == 1
    assert packed.tolist() == [
        [[u[0] | u[1] << 2 | u[2] << 4 | u[3] << 6, u[4] | u[5] << 2 | u[6] << 4 | u[7] << 6]]
    ]
    packed4, _ = pack(codes, 4, 8)
    u4 = codes[:, 0].astype(int) + 8
    assert packed4.tolist() == [[[int(u4[i] | u4[i + 1] << 4) for i in range(0, 8, 2)]]]
