"""On the real tiny SAM 2: full 8-bit weights saturate on AVX2 (emulated), the shipped w8a8 cannot, and
onnxruntime's fused encoder on this CPU matches the kernel model of this CPU's own int8 path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.eval.metrics import cosine
from sam2_quant_plugin.int8 import emulated, host_int8_path, saturation_report
from sam2_quant_plugin.int8.parity import avx2_parity
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.sam2.export import export_image_encoder
from sam2_quant_plugin.sam2.forward import encode
from sam2_quant_plugin.sam2.preprocess import to_model_input

pytestmark = [pytest.mark.slow, pytest.mark.onnx]
S = 256


def frozen(model: torch.nn.Module, recipe: str, photos: list) -> torch.nn.Module:
    q = prepare_qat(model, recipe)
    calibrate(q, photos[:1], image_size=S, progress=False)
    return freeze(q)


def test_vnni_recipe_saturates_on_avx2_and_onnxruntime_matches_the_host_kernel(
    tiny_sam2, photos, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    model = frozen(tiny_sam2, "w8a8_vnni", photos)
    assert not saturation_report(model).safe
    x = to_model_input(photos[1:2], S)  # a photo calibration did not see
    with torch.no_grad():
        ref = encode(model, x)["image_embed"]
        avx2 = encode(emulated(model, "avx2"), x)["image_embed"]
        host = encode(emulated(model, host_int8_path().onnxruntime), x)["image_embed"]
    assert cosine(avx2, ref) < 0.999  # what a CPU without VNNI would deploy: visibly off
    enc = export_image_encoder(model, tmp_path / "enc.onnx", image_size=S, target_cpu="vnni")
    got = torch.from_numpy(make_session(enc).run(None, {"image": x.numpy()})[0])
    assert cosine(got, host) > 0.9999, (cosine(got, host), cosine(got, ref))


def test_shipped_w8a8_is_right_on_every_cpu_by_proof(tiny_sam2, photos) -> None:  # type: ignore[no-untyped-def]
    model = frozen(tiny_sam2, "w8a8", photos)
    report = saturation_report(model)
    assert report.safe
    assert len(report.layers) == 51  # every Linear runs on an int8 kernel
    result = avx2_parity(model, photos[1:2], image_size=S, points_per_side=2)
    assert result["method"] == "proof"
    x = to_model_input(photos[1:2], S)
    with torch.no_grad():
        a = encode(emulated(model, "avx2", only_risky=False), x)["image_embed"]
        b = encode(emulated(model, "exact", only_risky=False), x)["image_embed"]
    assert np.array_equal(a.numpy(), b.numpy())
