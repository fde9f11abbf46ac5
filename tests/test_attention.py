"""Quantized attention MatMuls (sam2_quant_plugin.attention): maths, float path, calibrate/freeze, saving."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from sam2_quant_plugin.api import (
    ATTN_KINDS,
    current_recipe,
    fake_quants,
    freeze,
    prepare_qat,
    quant_state,
    quantizers,
    set_fake_quant,
)
from sam2_quant_plugin.attention import ATTN_FQ
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.errors import RecipeError
from sam2_quant_plugin.fake_quant.frozen import FrozenFakeQuantize
from sam2_quant_plugin.int8.safety import saturation_report
from sam2_quant_plugin.recipe import SCHEMA_VERSION, Recipe
from sam2_quant_plugin.saving import load_quantized, save_quantized
from tests._utils.tiny_attention import ATTN_MODULES, make_tiny_attention, tiny_tokens

ENC = "image_encoder.trunk.blocks.0.attn"
DEC = "sam_mask_decoder.transformer.layers.0.self_attn"


def recipe(attention: list | None = None, probs: str = "fixed") -> Recipe:
    d: dict = {
        "version": SCHEMA_VERSION,
        "name": "t",
        "rules": [{"match": "type:Linear", "weight": 8, "activation": {"bits": 8, "observer": "minmax"}}],
    }
    if attention is None:
        attention = [{"match": f"type:{t}", "probs": probs} for t in sorted(set(ATTN_MODULES.values()))]
    if attention:
        d["attention"] = attention
    return Recipe.from_dict(d)


def calibrated(r: Recipe) -> torch.nn.Module:
    q = prepare_qat(make_tiny_attention(), r)
    return calibrate(q, forward_loop=lambda m: m(tiny_tokens()))


def explicit(mod: torch.nn.Module, q: torch.Tensor, kt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    def fq(kind: str, x: torch.Tensor) -> torch.Tensor:
        scale, zp = getattr(mod, ATTN_FQ[kind]).calculate_qparams()
        return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), 0, 255)

    s = fq("attn_q", q) @ fq("attn_k", kt) / math.sqrt(q.shape[-1])
    return fq("attn_p", s.softmax(-1)) @ fq("attn_v", v)


@pytest.mark.parametrize("probs", ["fixed", "observed"])
def test_prepared_attention_is_the_explicit_quantized_maths(probs: str) -> None:
    q = calibrated(recipe(probs=probs))
    mod = q.get_submodule(DEC)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(mod, ATTN_FQ[k]).register_forward_pre_hook(lambda _m, a, k=k: seen.update({k: a[0]}))
        for k in ("attn_q", "attn_k", "attn_v")
    ]
    hooks.append(mod.out_proj.register_forward_pre_hook(lambda _m, a: seen.update(y=a[0]), prepend=True))
    x = tiny_tokens()
    with torch.no_grad():
        mod(q=x, k=x, v=x)
    for h in hooks:
        h.remove()
    qq, kt, v = seen["attn_q"], seen["attn_k"], seen["attn_v"]
    want = explicit(mod, qq, kt, v).transpose(1, 2).reshape(seen["y"].shape)
    torch.testing.assert_close(seen["y"], want, rtol=0, atol=1e-6)
    float_attn = F.scaled_dot_product_attention(qq, kt.transpose(-2, -1), v).transpose(1, 2)
    assert not torch.allclose(want, float_attn.reshape(want.shape), atol=1e-4)  # it does quantize
    if probs == "fixed":
        assert float(getattr(mod, ATTN_FQ["attn_p"]).scale) == pytest.approx(1 / 255)


def test_no_attention_rule_keeps_the_float_path_bit_identical() -> None:
    x, ref = tiny_tokens(), make_tiny_attention()
    q = prepare_qat(ref, recipe([]))
    assert not quant_state(q).attention
    assert not any(n.endswith(tuple(ATTN_FQ.values())) for n in fake_quants(q))
    set_fake_quant(q, False)
    with torch.no_grad():
        assert torch.equal(q(x), ref(x))


def test_calibration_observes_real_ranges_and_freeze_keeps_them() -> None:
    r = recipe([{"match": ENC}])
    q = prepare_qat(make_tiny_attention(), r)
    captured: dict[str, torch.Tensor] = {}
    mod = q.get_submodule(ENC)
    h = getattr(mod, ATTN_FQ["attn_q"]).register_forward_pre_hook(lambda _m, a: captured.update(q=a[0]))
    calibrate(q, forward_loop=lambda m: m(tiny_tokens()))
    h.remove()
    obs = getattr(mod, ATTN_FQ["attn_q"]).activation_post_process
    assert float(obs.min_val) == pytest.approx(float(captured["q"].min()))
    assert float(obs.max_val) == pytest.approx(float(captured["q"].max()))
    frozen = freeze(q)
    for kind in ATTN_KINDS:
        assert isinstance(getattr(frozen.get_submodule(ENC), ATTN_FQ[kind]), FrozenFakeQuantize)
    x = tiny_tokens(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), q.eval()(x), rtol=0, atol=0)


def test_quantizers_list_attention_kinds() -> None:
    q = freeze(calibrated(recipe()))
    infos = quantizers(q)
    for name in ATTN_MODULES:
        for kind in ATTN_KINDS:
            info = infos[(name, kind)]
            assert (info.bits, info.signed, info.qmin, info.qmax) == (8, False, 0, 255)
            assert q.get_submodule(info.module_name) is info.module
    assert saturation_report(q).layers[ENC] == (0, 2)


def test_deepcopy_torch_save_and_save_quantized_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = calibrated(recipe())
    frozen, x = freeze(q), tiny_tokens(seed=3)
    with torch.no_grad():
        want = frozen(x)
        assert torch.equal(copy.deepcopy(frozen)(x), want)
        buf = io.BytesIO()
        torch.save(frozen, buf)
        buf.seek(0)
        assert torch.equal(torch.load(buf, weights_only=False)(x), want)
        path = save_quantized(frozen, tmp_path / "q.pt")
        loaded = load_quantized(path, make_tiny_attention())
        assert torch.equal(loaded(x), want)
        assert {r.match for r in current_recipe(frozen).attention} == set(ATTN_MODULES)


def test_dropout_in_training_and_unsupported_arguments() -> None:
    q = calibrated(recipe())
    mod = q.get_submodule(DEC).train()
    x = tiny_tokens()
    with torch.no_grad():
        a, b = mod(q=x, k=x, v=x), mod(q=x, k=x, v=x)
    assert not torch.equal(a, b)  # dropout_p > 0 in training mode drops probabilities
    mod.eval()
    enc = q.get_submodule(ENC)
    orig = F.scaled_dot_product_attention
    enc.forward = lambda t: F.scaled_dot_product_attention(t, t, t, is_causal=True)  # type: ignore[method-assign]
    with pytest.raises(RecipeError, match="is_causal"):
        enc(torch.randn(1, 2, 4, 8))
    assert F.scaled_dot_product_attention is orig  # restored although the forward raised


def test_module_that_skips_sdpa_at_run_time_is_an_error() -> None:
    q = calibrated(recipe())
    enc = q.get_submodule(ENC)
    enc.forward = lambda t: t  # type: ignore[method-assign]
    with pytest.raises(RecipeError, match="without calling"):
        enc(torch.randn(1, 4, 16))


def test_fixed_probs_grid_loses_long_rows_observed_range_keeps_them() -> None:
    """Why `w8a8_attn` uses `probs: observed`: with 1024 keys (Hiera's global blocks at 512 px) a flat row's
    probabilities (~1/1024) are below half the fixed step 1/255 and all round to 0; a range calibrated on
    such rows keeps the row's mass."""
    from sam2_quant_plugin.attention import fixed_probs_quant
    from sam2_quant_plugin.qconfig import make_fake_quant
    from sam2_quant_plugin.recipe.schema import activation_spec

    g = torch.Generator().manual_seed(0)
    p = (0.1 * torch.randn(4, 1024, 1024, generator=g)).softmax(-1)
    assert float(p.max()) < 0.5 / 255
    assert float(fixed_probs_quant(8)(p).sum(-1).max()) == 0.0
    observed = make_fake_quant(activation_spec(bits=8, observer="minmax", symmetric=False))
    observed(p)  # observes and quantizes (the calibration pass)
    scale, zp = observed.calculate_qparams()
    assert int(zp) == 0
    assert float(scale) == pytest.approx(float(p.max()) / 255, rel=1e-3)
    mass = observed(p).sum(-1)
    torch.testing.assert_close(mass, torch.ones_like(mass), rtol=0, atol=0.02)


def test_shipped_attention_recipe_uses_observed_probabilities() -> None:
    from sam2_quant_plugin.recipe import load_recipe

    assert {r.probs for r in load_recipe("w8a8_attn").attention} == {"observed"}
