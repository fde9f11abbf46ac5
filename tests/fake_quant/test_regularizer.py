"""bit_penalty / bit_cost: the bit-width regulariser for learnable bits."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin import prepare_qat
from sam2_quant_plugin.errors import ConfigError, RecipeError
from sam2_quant_plugin.fake_quant import bit_cost, bit_penalty, learnable_bit_modules
from tests._utils import make_tiny_sam2_like

QKV = "image_encoder.trunk.blocks.0.attn.qkv"


@pytest.fixture
def learnable_model() -> torch.nn.Module:
    return prepare_qat(make_tiny_sam2_like(), "learnable")


def _weight_fqs(model: torch.nn.Module) -> dict:
    return {n: m for n, m in learnable_bit_modules(model).items() if n.endswith("weight_fake_quant")}


def test_learnable_modules_are_the_weight_quantizers(learnable_model) -> None:
    mods = learnable_bit_modules(learnable_model)
    assert mods
    assert all(n.endswith(".weight_fake_quant") for n in mods)
    assert f"{QKV}.weight_fake_quant" in mods


def test_penalty_is_average_bits_and_decreases_with_bits(learnable_model) -> None:
    start = {fq.bits for fq in _weight_fqs(learnable_model).values()}
    assert start == {7}  # the shipped recipe's init
    assert bit_penalty(learnable_model).item() == pytest.approx(7.0)
    for fq in _weight_fqs(learnable_model).values():
        fq.set_bits(4)
    assert bit_penalty(learnable_model).item() == pytest.approx(4.0)
    _weight_fqs(learnable_model)[f"{QKV}.weight_fake_quant"].set_bits(2)
    p_mixed = bit_penalty(learnable_model).item()
    assert p_mixed < 4.0
    # parameter weighting: the drop equals 2 bits times qkv's share of the quantized weights
    sizes = {
        n: learnable_model.get_submodule(n.rsplit(".", 1)[0]).weight.numel()
        for n in _weight_fqs(learnable_model)
    }
    share = sizes[f"{QKV}.weight_fake_quant"] / sum(sizes.values())
    assert p_mixed == pytest.approx(4.0 - 2 * share, rel=1e-6)


def test_importance_divides(learnable_model) -> None:
    base = bit_penalty(learnable_model, weight_by_params=False).item()
    got = bit_penalty(learnable_model, {QKV: 4.0}, weight_by_params=False).item()  # by layer name
    assert got == pytest.approx(base - _qkv_drop(learnable_model, 4.0))
    assert got < base
    by_fq_name = bit_penalty(
        learnable_model, {f"{QKV}.weight_fake_quant": 4.0}, weight_by_params=False
    ).item()
    assert by_fq_name == pytest.approx(got)
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="importance"):
            bit_penalty(learnable_model, {QKV: bad})


def _qkv_drop(model: torch.nn.Module, imp: float) -> float:
    """How much dividing qkv's cost by ``imp`` lowers the per-channel-count weighted penalty."""
    fqs = _weight_fqs(model)
    sizes = {n: float(fq.scale.numel()) for n, fq in fqs.items()}
    q = f"{QKV}.weight_fake_quant"
    return fqs[q].bits * sizes[q] * (1 - 1 / imp) / sum(sizes.values())


def test_gradient_reaches_bit_offset(learnable_model) -> None:
    for soft in (True, False):
        for fq in learnable_bit_modules(learnable_model).values():
            fq.bit_offset.grad = None
        bit_penalty(learnable_model, soft=soft).backward()
        for name, fq in learnable_bit_modules(learnable_model).items():
            assert fq.bit_offset.grad is not None, name
            assert float(fq.bit_offset.grad) > 0, name
    # a descent step on the penalty lowers the bits
    opt = torch.optim.SGD([fq.bit_offset for fq in learnable_bit_modules(learnable_model).values()], lr=1e4)
    opt.zero_grad()
    bit_penalty(learnable_model).backward()
    opt.step()
    assert bit_penalty(learnable_model, soft=False).item() < 8.0


def test_bit_cost_soft_vs_rounded(learnable_model) -> None:
    fq = _weight_fqs(learnable_model)[f"{QKV}.weight_fake_quant"]
    with torch.no_grad():
        fq.bit_offset.fill_(3.3)
    assert bit_cost(fq, soft=True).item() == pytest.approx(5.3)
    assert bit_cost(fq, soft=False).item() == 5.0


def test_error_without_learnable_bits() -> None:
    model = prepare_qat(make_tiny_sam2_like(), "w8a8")
    with pytest.raises(RecipeError, match="no learnable-bit"):
        bit_penalty(model)
    with pytest.raises(RecipeError, match="no learnable-bit"):
        bit_penalty(make_tiny_sam2_like())
