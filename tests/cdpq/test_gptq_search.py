"""GPTQ inside the CDPQ search: each attempt scores the layer GPTQ-rounded at the new width."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2_quant_plugin.cdpq.mirror import EvalMirror
from sam2_quant_plugin.cdpq.run import run_cdpq
from sam2_quant_plugin.cdpq.session import build_session
from sam2_quant_plugin.cdpq.student import weight_quantizers
from sam2_quant_plugin.errors import ConfigError
from sam2_quant_plugin.gptq import gptq_round
from sam2_quant_plugin.numerics import qrange
from tests.cdpq.toy import toy_config, toy_session_kw

ROOTS = ("body", "iou_head")  # three convs and one Linear


def test_attempt_scores_the_gptq_rounding_and_undo_restores(tmp_path: Path) -> None:
    s = build_session(toy_config(rounding="gptq", target_roots=ROOTS), **toy_session_kw())
    assert s.hessians is not None
    assert set(s.hessians.sums) == {"iou_head"}  # Linear candidates only
    mirror = EvalMirror(s)
    layer, fq = s.student.get_submodule("iou_head"), weight_quantizers(s.student)["iou_head"]
    before = layer.weight.detach().clone()
    qmin, qmax = qrange(4, fq.signed, fq.narrow_range)
    want, _ = gptq_round(before, s.hessians.hessian("iou_head"), qmin, qmax)
    _, undo = mirror.trial("iou_head", 4)
    assert fq.bits == 4
    assert torch.allclose(layer.weight, want, atol=1e-6), "the student holds GPTQ's rounding"
    assert torch.allclose(fq(layer.weight), layer.weight, atol=1e-6), "on the quantizer's grid"
    assert torch.equal(mirror.model.get_submodule("iou_head").weight, fq(layer.weight).detach())
    undo()
    assert torch.equal(layer.weight, before)
    assert fq.bits == 8


def test_search_with_gptq_rounding_runs_and_keeps_its_steps(tmp_path: Path) -> None:
    cfg = toy_config(rounding="gptq", target_roots=ROOTS, ladder=(8, 4), impact_threshold=1.0)
    summary = run_cdpq(cfg, tmp_path, progress=False, **toy_session_kw())
    assert summary["bits"]["iou_head"] == 4


def test_unknown_rounding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rounding='adaround'"):
        toy_config(rounding="adaround")
