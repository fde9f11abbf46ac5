"""CDPQ with per-group weight scales: the student recipe, bit drops with MSE refit, config checks."""

from __future__ import annotations

import pytest
import torch

from sam2_quant_plugin.api import prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.cdpq.config import CDPQConfig
from sam2_quant_plugin.cdpq.package import build_package, package_to_state_dict
from sam2_quant_plugin.cdpq.student import set_layer_bits, student_recipe, weight_quantizers
from sam2_quant_plugin.errors import ConfigError
from tests.onnx._models import TinyNet, example


def _student(group_size: int | None) -> torch.nn.Module:
    s = prepare_qat(TinyNet().eval(), student_recipe(("",), group_size=group_size))
    calibrate(s, forward_loop=lambda m: m(example(4)), progress=False)
    return s


def test_linears_get_groups_and_convs_stay_per_channel() -> None:
    fqs = weight_quantizers(_student(16))
    assert fqs["stem"].group_size == 0
    assert fqs["stem"].scale.numel() == 16  # one per output channel
    assert {n: fq.group_size for n, fq in fqs.items() if n != "stem"} == {"fc1": 16, "fc2": 16, "head": 16}
    assert fqs["fc2"].scale.numel() == 32 * 64 // 16


def test_bit_drop_refits_each_group_and_beats_per_channel() -> None:
    errors = {}
    for g in (None, 16):
        s = _student(g)
        set_layer_bits(s, "fc2", 3)
        w = s.fc2.weight.detach()
        with torch.no_grad():
            errors[g] = float((s.fc2.weight_fake_quant(w) - w).pow(2).mean())
        pkg = package_to_state_dict(build_package(s))
        with torch.no_grad():
            assert torch.allclose(pkg["fc2.weight"], s.fc2.weight_fake_quant(w), atol=1e-6)
    assert errors[16] < errors[None]


def test_config_rejects_bad_group_size() -> None:
    assert CDPQConfig(group_size=32).group_size == 32
    with pytest.raises(ConfigError, match="power of two"):
        CDPQConfig(group_size=48)
