"""prepare_qat / calibrate / freeze / current_recipe / weight_bits_summary on the tiny model (the real tiny
SAM 2 is in test_api_sam2.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sam2_quant_plugin import (
    FrozenFakeQuantize,
    LearnableBitFakeQuantize,
    calibrate,
    current_recipe,
    fake_quants,
    freeze,
    prepare_qat,
    quant_state,
    set_fake_quant,
    weight_bits_summary,
)
from sam2_quant_plugin.api import INPUT_FQ
from sam2_quant_plugin.errors import CalibrationError, RecipeError
from sam2_quant_plugin.recipe import (
    LayerRule,
    Recipe,
    activation_spec,
    dump_recipe,
    load_recipe,
)
from sam2_quant_plugin.recipe.resolve import resolve
from sam2_quant_plugin.recipe.table import plan_totals
from sam2_quant_plugin.torchao_adapter import QAT_TYPES
from tests._utils import TINY_LAYERS, make_tiny_sam2_like, tiny_input

QKV0 = "image_encoder.trunk.blocks.0.attn.qkv"
Q_PROJ = "sam_mask_decoder.transformer.layers.0.self_attn.q_proj"
ENCODER_LAYERS = [n for n in TINY_LAYERS if n.startswith("image_encoder.")]


def calibrated(recipe: str | Recipe = "w8a8", model: nn.Module | None = None) -> nn.Module:
    x = tiny_input()
    qmodel = prepare_qat(model if model is not None else make_tiny_sam2_like(), recipe)
    return calibrate(qmodel, forward_loop=lambda m: m(x))


# -- prepare_qat ------------------------------------------------------------------------------------
def test_prepare_keeps_names_and_float_state_dict() -> None:
    model = make_tiny_sam2_like()
    before = dict(model.named_modules())
    float_sd = model.state_dict()
    qmodel = prepare_qat(model, "w8a8")
    after = dict(qmodel.named_modules())
    assert set(before) <= set(after)
    extra = set(after) - set(before)
    assert all(any(p in n for p in ("weight_fake_quant", INPUT_FQ, "activation_post_process")) for n in extra)
    qsd = qmodel.state_dict()
    for key, value in float_sd.items():
        assert key in qsd, key
        assert torch.equal(qsd[key], value), key
    # the float model is untouched (inplace=False)
    assert all(type(m) in (nn.Linear, nn.Conv2d) for n, m in model.named_modules() if n in TINY_LAYERS)
    assert not hasattr(model, "sam2_quant_state")


def test_prepare_swaps_only_target_layers() -> None:
    qmodel = prepare_qat(make_tiny_sam2_like(), "w8a8")
    for name in ENCODER_LAYERS:
        layer = qmodel.get_submodule(name)
        assert isinstance(layer, QAT_TYPES), name
        assert isinstance(layer.weight_fake_quant, LearnableBitFakeQuantize)
        # the shipped w8a8 quantizes inputs only where onnxruntime has an int8 kernel: Linear, not Conv2d
        if TINY_LAYERS[name] == "Linear":
            assert isinstance(getattr(layer, INPUT_FQ), LearnableBitFakeQuantize)
        else:
            assert getattr(layer, INPUT_FQ, None) is None, name
    for name in TINY_LAYERS:
        if name.startswith("sam_mask_decoder."):
            layer = qmodel.get_submodule(name)
            assert type(layer) is nn.Linear, name
            assert not hasattr(layer, "activation_post_process")
            assert not layer._forward_pre_hooks
            assert not layer._forward_hooks


def test_layernorm_gets_no_observer() -> None:
    qmodel = prepare_qat(make_tiny_sam2_like(), "w8a8")
    norms = [m for m in qmodel.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 5
    for m in norms:
        assert not hasattr(m, "activation_post_process")
        assert not list(m.children())
        assert not m._forward_hooks
        assert not m._forward_pre_hooks
        assert getattr(m, "qconfig", None) is None


def test_prepare_keeps_train_eval_mode() -> None:
    assert not prepare_qat(make_tiny_sam2_like(), "w8a8").training
    assert prepare_qat(make_tiny_sam2_like().train(), "w8a8").training


def test_double_prepare_errors() -> None:
    qmodel = prepare_qat(make_tiny_sam2_like(), "w8a8")
    with pytest.raises(RecipeError, match="already prepared"):
        prepare_qat(qmodel, "w8a8")


def test_recipe_that_quantizes_nothing_errors() -> None:
    nothing = Recipe(name="nothing", rules=(LayerRule(QKV0),))  # an exclusion, no default
    with pytest.raises(RecipeError, match="quantizes no layer"):
        prepare_qat(make_tiny_sam2_like(), nothing)


def test_unprepared_model_errors() -> None:
    with pytest.raises(RecipeError, match="not prepared"):
        freeze(make_tiny_sam2_like())
    with pytest.raises(RecipeError, match="not prepared"):
        calibrate(make_tiny_sam2_like(), forward_loop=lambda m: None)


# -- calibrate --------------------------------------------------------------------------------------
def test_calibrate_with_forward_loop() -> None:
    x = tiny_input()
    qmodel = prepare_qat(make_tiny_sam2_like().train(), "w8a8")
    calls = []

    def loop(m: nn.Module) -> None:
        calls.append((m.training, torch.is_grad_enabled()))
        m(x)

    calibrate(qmodel, forward_loop=loop)
    assert calls == [(False, False)]  # eval, no grad
    assert qmodel.training  # mode restored
    fqs = fake_quants(qmodel)
    n_linear = sum(TINY_LAYERS[n] == "Linear" for n in ENCODER_LAYERS)
    assert len(fqs) == len(ENCODER_LAYERS) + n_linear  # every weight, Linear inputs
    for name, fq in fqs.items():
        assert int(fq.scale_initialized) == 1, name
        assert int(fq.observer_enabled) == 0, name  # observers off afterwards
    # an input quantizer's range is the input it saw
    qkv = qmodel.get_submodule(QKV0)
    assert float(getattr(qkv, INPUT_FQ).scale) > 0


def test_calibrate_errors_when_a_quantizer_sees_no_data() -> None:
    r = load_recipe("w8a8_vnni")  # round-to-nearest everywhere: convs included (GPTQ is for Linears)
    both = Recipe(name="both", default=r.default, targets=("image_encoder", "sam_mask_decoder"))
    qmodel = prepare_qat(make_tiny_sam2_like(), both)
    with pytest.raises(CalibrationError, match="saw no data") as info:
        calibrate(qmodel, forward_loop=lambda m: m.image_encoder(tiny_input()))
    assert "sam_mask_decoder" in str(info.value)
    assert not qmodel.training
    calibrate(qmodel, forward_loop=lambda m: m(tiny_input()))  # the full forward reaches every quantizer


def test_calibrate_nan_input_raises() -> None:
    qmodel = prepare_qat(make_tiny_sam2_like(), "w8a8")
    x = tiny_input()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(CalibrationError, match="NaN"):
        calibrate(qmodel, forward_loop=lambda m: m(x))


def test_prepared_model_quantizes_and_can_be_switched_off() -> None:
    model = make_tiny_sam2_like()
    qmodel = calibrated("w8a8_vnni", model)  # round-to-nearest: GPTQ (w8a8) rewrites the weights themselves
    x = tiny_input()
    with torch.no_grad():
        ref, out = model(x), qmodel(x)
        assert not torch.equal(ref, out)
        assert float((out - ref).abs().max()) < 0.1 * float(ref.abs().max())
        set_fake_quant(qmodel, False)
        torch.testing.assert_close(qmodel(x), ref)


def test_training_step_reaches_weights_scales_and_bits() -> None:
    qmodel = calibrated("learnable").train()
    out = qmodel(tiny_input())
    out.pow(2).mean().backward()
    layer = qmodel.get_submodule(QKV0)
    assert layer.weight.grad is not None
    assert float(layer.weight.grad.abs().sum()) > 0
    assert float(layer.weight_fake_quant.scale.grad.abs().sum()) > 0
    assert float(layer.weight_fake_quant.bit_offset.grad.abs()) > 0


# -- freeze -----------------------------------------------------------------------------------------
def test_freeze_gives_frozen_quantizers_with_integer_bits() -> None:
    qmodel = calibrated("learnable")
    with torch.no_grad():
        qmodel.get_submodule(QKV0).weight_fake_quant.bit_offset.fill_(2.7)  # 2 + 2.7 -> 5 bits
    x = tiny_input()
    with torch.no_grad():
        expected = qmodel.eval()(x)
    frozen = freeze(qmodel)
    fqs = fake_quants(frozen)
    assert len(fqs) == 2 * len(ENCODER_LAYERS)
    assert all(isinstance(fq, FrozenFakeQuantize) for fq in fqs.values())
    assert all(type(fq.bits) is int for fq in fqs.values())
    assert frozen.get_submodule(QKV0).weight_fake_quant.bits == 5
    state = quant_state(frozen)
    assert state.frozen
    assert state.plans[QKV0].weight_bits == 5
    assert not state.plans[QKV0].weight.learnable
    assert not frozen.training
    assert not quant_state(qmodel).frozen  # the original stays trainable
    assert isinstance(qmodel.get_submodule(QKV0).weight_fake_quant, LearnableBitFakeQuantize)
    with torch.no_grad():
        assert torch.equal(frozen(x), expected)  # same kernel, same numbers


def test_freeze_uncalibrated_raises() -> None:
    with pytest.raises(CalibrationError, match="calibrate"):
        freeze(prepare_qat(make_tiny_sam2_like(), "w8a8"))


# -- current_recipe / summary ----------------------------------------------------------------------
def test_current_recipe_round_trip(tmp_path) -> None:
    qmodel = calibrated("learnable")
    wanted = {name: 2 + i % 6 for i, name in enumerate(ENCODER_LAYERS)}  # the recipe's range: 2..7
    for name, bits in wanted.items():
        qmodel.get_submodule(name).weight_fake_quant.set_bits(bits)
    rec = current_recipe(qmodel, name="searched")
    assert rec.name == "searched"
    assert rec.default is None
    assert {r.match for r in rec.rules} == set(ENCODER_LAYERS)
    path = tmp_path / "searched.yaml"
    path.write_text(dump_recipe(rec))
    again = load_recipe(path)
    assert again == rec
    fresh = prepare_qat(make_tiny_sam2_like(), again)
    got = {n: p.weight_bits for n, p in quant_state(fresh).plans.items()}
    assert got == wanted
    for name, bits in wanted.items():
        assert fresh.get_submodule(name).weight_fake_quant.bits == bits
        assert not fresh.get_submodule(name).weight_fake_quant.learnable_bits
        assert getattr(fresh.get_submodule(name), INPUT_FQ).bits == 8


def test_current_recipe_of_frozen_model() -> None:
    frozen = freeze(calibrated("mixed"))
    rec = current_recipe(frozen)
    plans = quant_state(prepare_qat(make_tiny_sam2_like(), rec)).plans
    assert {n: p.weight_bits for n, p in plans.items()} == {
        n: p.weight_bits for n, p in quant_state(frozen).plans.items()
    }


def test_weight_bits_summary_average() -> None:
    qmodel = prepare_qat(make_tiny_sam2_like(), "mixed")
    plans = quant_state(qmodel).plans
    numel = {n: qmodel.get_submodule(n).weight.numel() for n, p in plans.items() if p.weight is not None}
    bits = {n: plans[n].weight_bits for n in numel}
    assert set(bits.values()) == {4, 6, 8}
    s = weight_bits_summary(qmodel)
    total = sum(numel.values())
    assert s["quantized_params"] == total
    assert s["avg_weight_bits"] == pytest.approx(sum(bits[n] * numel[n] for n in numel) / total)
    assert s["weight_bytes"] == pytest.approx(sum(bits[n] * numel[n] for n in numel) / 8)
    # As the int4 ONNX export stores them: 6-bit codes take a byte, 4-bit codes half a byte.
    onnx = weight_bits_summary(qmodel, storage="onnx")
    stored = {4: 4, 6: 8, 8: 8}
    assert onnx["avg_weight_bits"] == s["avg_weight_bits"]
    assert onnx["weight_bytes"] == pytest.approx(sum(stored[bits[n]] * numel[n] for n in numel) / 8)
    with pytest.raises(ValueError, match="storage='zip' is unknown"):
        weight_bits_summary(qmodel, storage="zip")
    # `inspect`'s totals (from the resolved plans, before prepare) count on the same basis
    totals = plan_totals(resolve(make_tiny_sam2_like(), load_recipe("mixed")))
    assert totals["quantized_weight_params"] == s["quantized_params"]
    assert totals["avg_weight_bits"] == pytest.approx(s["avg_weight_bits"])
    assert totals["weight_bytes"] == pytest.approx(s["weight_bytes"])


def test_activation_only_layer() -> None:
    rec = Recipe(name="a-only", rules=(LayerRule(Q_PROJ, activation=activation_spec(bits=8)),))
    qmodel = calibrated(rec)
    layer = qmodel.get_submodule(Q_PROJ)
    assert type(layer) is nn.Linear
    assert isinstance(getattr(layer, INPUT_FQ), LearnableBitFakeQuantize)
    assert weight_bits_summary(qmodel)["quantized_params"] == 0
    frozen = freeze(qmodel)
    assert isinstance(getattr(frozen.get_submodule(Q_PROJ), INPUT_FQ), FrozenFakeQuantize)
