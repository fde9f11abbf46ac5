from __future__ import annotations

import pytest
import torch
from torch import nn

from sam2_quant_plugin.cdpq.config import LossWeights
from sam2_quant_plugin.cdpq.features import Captured, FeatureCapture, matching_layers
from sam2_quant_plugin.cdpq.losses import (
    affinity_loss,
    distill_loss,
    feature_loss,
    layer_stats_loss,
    mask_kd,
)


def _cap(x: torch.Tensor, ch: int = -1) -> Captured:
    return Captured(x, ch)


def test_layer_terms_zero_at_match_positive_otherwise() -> None:
    x = torch.randn(2, 5, 5, 8)
    y = x + 0.3 * torch.randn_like(x)
    for fn in (layer_stats_loss, feature_loss, affinity_loss):
        assert float(fn(_cap(x), _cap(x))) == pytest.approx(0.0, abs=1e-6)
        assert float(fn(_cap(x), _cap(y))) > 0


def test_conv_channel_axis_is_used() -> None:
    x = torch.randn(2, 4, 6, 6)
    shifted = x.clone()
    shifted[:, 0] += 1.0  # one channel's mean moves
    assert float(layer_stats_loss(_cap(x, 1), _cap(shifted, 1))) > 0


def test_mask_kd_is_zero_at_match_and_grows() -> None:
    t = torch.randn(3, 1, 8, 8) * 3
    assert float(mask_kd(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(mask_kd(-t, t)) > float(mask_kd(t + 0.1, t)) > 0


def test_distill_loss_weights_and_missing_layers() -> None:
    t_out = {"image_embed": torch.randn(1, 4, 3, 3), "iou_predictions": torch.rand(2, 1)}
    s_out = {k: v + 0.1 for k, v in t_out.items()}
    layers = {"a": _cap(torch.randn(1, 9, 4))}
    s_layers = {"a": _cap(layers["a"].value + 0.2)}
    total, parts, per_layer = distill_loss(t_out, s_out, layers, s_layers, LossWeights())
    assert set(parts) == {"stats", "feature", "embed", "iou"}
    assert set(per_layer) == {"a"}
    off, parts_off, per_off = distill_loss(t_out, s_out, {}, {}, LossWeights(embed=0.0))
    assert set(parts_off) == {"iou"}
    assert not per_off
    assert float(off) < float(total)


def test_feature_capture_hooks_removed_and_grad_kept() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Conv2d(1, 2, 1))
    x = torch.randn(1, 1, 3, 4)
    with FeatureCapture(net, ["0", "2"]) as cap:
        net(x)
    assert cap.outputs["0"].value.requires_grad
    assert cap.outputs["2"].ch_dim == 1
    assert cap.outputs["0"].ch_dim == -1
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(KeyError), FeatureCapture(net, ["nope"]):
        pass


def test_matching_layers_skips_shape_mismatch() -> None:
    a = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    b = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    assert matching_layers(a, b, ["0", "1", "2"]) == ["0"]
