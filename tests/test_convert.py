"""convert(): torch CPU int8 layers for weight+activation layers, float twins for weight-only layers."""

from __future__ import annotations

import pytest
import torch
import torch.ao.nn.quantized as nnq
from torch import nn

from sam2_quant_plugin import calibrate, convert, freeze, prepare_qat, quant_state
from sam2_quant_plugin.api import INPUT_FQ
from sam2_quant_plugin.convert import QuantizedLayer
from sam2_quant_plugin.errors import Int8Error
from sam2_quant_plugin.fake_quant import FrozenFakeQuantize
from sam2_quant_plugin.int8 import host_int8_path, int8_layers, saturation_report
from sam2_quant_plugin.recipe import LayerRule, Recipe, activation_spec, weight_spec
from tests._utils import TINY_LAYERS, make_tiny_sam2_like, tiny_input

ENCODER = [n for n in TINY_LAYERS if n.startswith("image_encoder.")]
QKV0 = "image_encoder.trunk.blocks.0.attn.qkv"
NECK = "image_encoder.neck.convs.0.conv"


def frozen_model(recipe: str | Recipe) -> nn.Module:
    x = tiny_input(4)
    return freeze(calibrate(prepare_qat(make_tiny_sam2_like(), recipe), forward_loop=lambda m: m(x)))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_w8a8_layers_become_int8_modules() -> None:
    frozen = frozen_model("w8a8")
    int8 = convert(frozen)
    assert not int8.training
    for name in ENCODER:
        wrapper = int8.get_submodule(name)
        if TINY_LAYERS[name] == "Conv2d":  # weight-only in the shipped w8a8: a float twin
            assert type(wrapper) is nn.Conv2d, name
            continue
        assert isinstance(wrapper, QuantizedLayer), name
        assert isinstance(wrapper.module, nnq.Linear), name
        assert isinstance(wrapper.quant, nnq.Quantize)
        assert isinstance(wrapper.dequant, nnq.DeQuantize)
    for name in TINY_LAYERS:
        if name.startswith("sam_mask_decoder."):
            assert type(int8.get_submodule(name)) is nn.Linear
    assert not any(isinstance(m, FrozenFakeQuantize) for m in int8.modules())
    # the input stays frozen (convert copies by default)
    assert isinstance(frozen.get_submodule(QKV0).weight_fake_quant, FrozenFakeQuantize)


def test_int8_layer_uses_the_frozen_qparams() -> None:
    frozen = frozen_model("w8a8")
    int8 = convert(frozen)
    fl, ql = frozen.get_submodule(QKV0), int8.get_submodule(QKV0)
    wfq, afq = fl.weight_fake_quant, getattr(fl, INPUT_FQ)
    torch.testing.assert_close(ql.module.weight().dequantize(), wfq(fl.weight.detach()), rtol=0, atol=1e-7)
    assert float(ql.quant.scale) == pytest.approx(float(afq.scale))
    shift = 128 if afq.signed else 0
    assert int(ql.quant.zero_point) == int(afq.zero_point) + shift


def test_int8_layer_output_within_one_output_step_of_frozen() -> None:
    frozen = frozen_model("w8a8")
    int8 = convert(frozen)
    fl, ql = frozen.get_submodule(QKV0), int8.get_submodule(QKV0)
    seen = {}
    fl.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].detach().clone()))
    with torch.no_grad():
        frozen(tiny_input(4))  # the calibration input: every output is inside the observed range
        x = seen["x"]
        ref, out = fl(x), ql(x)
    out_step = float(ql.module.scale)
    assert float((out - ref).abs().max()) <= 1.01 * out_step
    assert rel_err(out, ref) < 0.02


def test_model_output_close_to_frozen() -> None:
    frozen = frozen_model("w8a8")
    int8 = convert(frozen)
    x = tiny_input(4)
    with torch.no_grad():
        ref, out = frozen(x), int8(x)
        fp = make_tiny_sam2_like()(x)
    assert out.shape == ref.shape
    assert rel_err(out, ref) < 0.05
    assert rel_err(out, fp) < 0.1  # and still a faithful copy of the float model
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert float(cos) > 0.99


def test_weight_only_layers_become_float_with_fake_quantized_weights() -> None:
    frozen = frozen_model("w8_weight_only")
    int8 = convert(frozen)
    x = tiny_input(4)
    for name in ENCODER:
        layer = int8.get_submodule(name)
        assert type(layer) is (nn.Conv2d if TINY_LAYERS[name] == "Conv2d" else nn.Linear), name
        fl = frozen.get_submodule(name)
        assert torch.equal(layer.weight.detach(), fl.weight_fake_quant(fl.weight.detach()))
        assert torch.equal(layer.bias.detach(), fl.bias.detach())
        assert not any(isinstance(m, FrozenFakeQuantize) for m in layer.modules())
    conv = int8.get_submodule("image_encoder.trunk.patch_embed.proj")
    assert (conv.kernel_size, conv.stride) == ((4, 4), (4, 4))
    with torch.no_grad():
        torch.testing.assert_close(int8(x), frozen(x), rtol=1e-5, atol=1e-5)  # same maths, no int8 kernel


def test_mixed_recipe_int8_and_float_layers() -> None:
    rec = Recipe(
        name="mix",
        default=LayerRule("<default>", weight=weight_spec(bits=8)),
        rules=(LayerRule(QKV0, weight=weight_spec(bits=4), activation=activation_spec(bits=8)),),
    )
    frozen = frozen_model(rec)
    int8 = convert(frozen)
    assert isinstance(int8.get_submodule(QKV0), QuantizedLayer)
    assert type(int8.get_submodule(NECK)) is nn.Conv2d
    # 4-bit codes survive the int8 container: clamped to [-7, 7]
    codes = int8.get_submodule(QKV0).module.weight().int_repr()
    assert int(codes.min()) >= -7
    assert int(codes.max()) <= 7
    x = tiny_input(4)
    with torch.no_grad():
        assert rel_err(int8(x), frozen(x)) < 0.05


def test_convert_freezes_a_prepared_model_and_leaves_it_alone() -> None:
    x = tiny_input(4)
    qmodel = calibrate(prepare_qat(make_tiny_sam2_like(), "w8a8"), forward_loop=lambda m: m(x))
    int8 = convert(qmodel)
    assert quant_state(int8).frozen
    assert not quant_state(qmodel).frozen
    assert isinstance(int8.get_submodule(QKV0), QuantizedLayer)
    assert not isinstance(qmodel.get_submodule(QKV0), QuantizedLayer)
    with torch.no_grad():
        assert rel_err(int8(x), freeze(qmodel)(x)) < 0.05


def test_convert_inplace() -> None:
    frozen = frozen_model("w8a8")
    out = convert(frozen, inplace=True)
    assert out is frozen
    assert isinstance(frozen.get_submodule(QKV0), QuantizedLayer)


def test_signed_symmetric_activations_shift_to_uint8() -> None:
    rec = Recipe(
        name="sym-act",
        default=LayerRule(  # 7-bit weights: int8 kernels are exact on every CPU
            "<default>", weight=weight_spec(bits=7), activation=activation_spec(bits=8, symmetric=True)
        ),
    )
    frozen = frozen_model(rec)
    afq = getattr(frozen.get_submodule(QKV0), INPUT_FQ)
    assert afq.signed
    assert (afq.quant_min, afq.quant_max) == (-128, 127)
    assert int(afq.zero_point) == 0
    int8 = convert(frozen)
    quant = int8.get_submodule(QKV0).quant
    assert int(quant.zero_point) == 128  # int8 kernels take uint8: same real values, codes shifted
    x = tiny_input(4)
    with torch.no_grad():
        assert rel_err(int8(x), frozen(x)) < 0.05


def test_convert_refuses_saturating_weights_exactly_where_the_cpu_saturates() -> None:
    """Full 8-bit weights: converted where torch's int8 kernels are exact (VNNI), a named error where they
    saturate int16 pairs (AVX2-class); the expectation comes from probing this CPU's kernels."""
    frozen = frozen_model("w8a8_vnni")
    assert not saturation_report(frozen).safe
    if host_int8_path().torch == "avx2":
        with pytest.raises(Int8Error, match="Fix: use a recipe whose int8 weights have 7-bit") as info:
            convert(frozen)
        assert "--target-cpu" not in str(info.value)  # convert() has no target: it runs on this CPU
        return
    int8 = convert(frozen)
    x = tiny_input(4)
    with torch.no_grad():
        assert rel_err(int8(x), frozen(x)) < 0.05


def test_shipped_w8a8_is_safe_for_torch_int8_kernels_on_every_cpu() -> None:
    frozen = frozen_model("w8a8")
    assert saturation_report(frozen).safe
    codes = [int8_layers(frozen)[n].w_codes for n in int8_layers(frozen)]
    assert max(int(abs(c).max()) for c in codes) <= 63
