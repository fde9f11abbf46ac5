"""The core API on the real tiny SAM 2 (slow): calibrate on photos, run inside an unmodified
SAM2ImagePredictor, convert to torch int8, the shipped recipes' quantizers and placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sam2_quant_plugin import (
    LearnableBitFakeQuantize,
    calibrate,
    fake_quants,
    freeze,
    prepare_qat,
    quant_state,
)
from sam2_quant_plugin.api import INPUT_FQ
from sam2_quant_plugin.recipe import shipped_recipes

pytestmark = pytest.mark.slow


def test_tiny_sam2_w4a8_calibrate_and_predictor(tiny_sam2: nn.Module, photos: list[np.ndarray]) -> None:
    from sam2_quant_plugin.sam2 import make_image_predictor

    qmodel = prepare_qat(tiny_sam2, "w4a8")
    assert qmodel is not tiny_sam2
    calibrate(qmodel, progress=False)  # the bundled photos
    fqs = fake_quants(qmodel)
    assert fqs
    assert all(int(fq.scale_initialized) == 1 for fq in fqs.values())
    qkv = qmodel.get_submodule("image_encoder.trunk.blocks.0.attn.qkv")
    assert qkv.weight_fake_quant.bits == 4
    assert getattr(qkv, INPUT_FQ).bits == 8
    predictor = make_image_predictor(qmodel)
    photo = photos[0]
    predictor.set_image(photo)
    h, w = photo.shape[:2]
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[w // 2, h // 2]]), point_labels=np.array([1]), multimask_output=True
    )
    assert masks.shape == (3, h, w)
    assert scores.shape == (3,)
    assert np.isfinite(scores).all()
    assert masks.dtype == np.float32 or masks.dtype == bool


def test_tiny_sam2_convert_w8a8_matches_frozen(tiny_sam2: nn.Module, photo_batch: torch.Tensor) -> None:
    import torch.ao.nn.quantized as nnq

    from sam2_quant_plugin import convert
    from sam2_quant_plugin.sam2 import encode

    qmodel = prepare_qat(tiny_sam2, "w8a8")
    calibrate(qmodel, photo_batch, progress=False)
    frozen = freeze(qmodel)
    int8 = convert(frozen)
    assert sum(isinstance(m, nnq.Linear) for m in int8.modules()) == 51
    assert not any(isinstance(m, nnq.Conv2d) for m in int8.modules())  # weight-only convs: float twins
    x = photo_batch[:1]
    with torch.no_grad():
        ref = encode(frozen, x)["image_embed"]
        out = encode(int8, x)["image_embed"]
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert float(cos) > 0.99


def test_shipped_recipes_never_use_fused_fake_quant(tiny_sam2: nn.Module) -> None:
    from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize

    for key in shipped_recipes():
        qmodel = prepare_qat(tiny_sam2, key)
        assert fake_quants(qmodel), key
        fused = [n for n, m in qmodel.named_modules() if isinstance(m, FusedMovingAvgObsFakeQuantize)]
        assert fused == [], key
        assert all(isinstance(fq, LearnableBitFakeQuantize) for fq in fake_quants(qmodel).values()), key
        del qmodel


def test_shipped_w8a8_placement_on_tiny_sam2(tiny_sam2: nn.Module) -> None:
    # Inputs are quantized only where onnxruntime has an int8 kernel (Linear); w8a8_fidelity also leaves
    # block 0's and the three stage-transition projections' inputs float.
    def float_input_layers(key: str) -> dict[str, str]:
        plans = quant_state(prepare_qat(tiny_sam2, key)).plans
        # int8-kernel Linears get 7-bit-magnitude weights (no int16 saturation on AVX2), the rest 8 bits
        for name, p in plans.items():
            assert p.weight_bits == (7 if p.activation is not None else 8), (key, name)
        return {n: p.type_name for n, p in plans.items() if p.activation is None}

    convs = {
        n
        for n, m in tiny_sam2.image_encoder.named_modules(prefix="image_encoder")
        if isinstance(m, nn.Conv2d)
    }
    assert set(float_input_layers("w8a8")) == convs
    transitions = {f"image_encoder.trunk.blocks.{i}.proj" for i in (1, 3, 10)}
    block0 = {
        f"image_encoder.trunk.blocks.0.{n}" for n in ("attn.qkv", "attn.proj", "mlp.layers.0", "mlp.layers.1")
    }
    assert set(float_input_layers("w8a8_fidelity")) == convs | transitions | block0
