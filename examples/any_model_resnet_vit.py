"""Quantize any torch model: torchvision resnet18 and a small ViT, recipe -> int8 ONNX -> onnxruntime.

    python examples/any_model_resnet_vit.py                  # 64 px resnet18, 32 px 2-layer ViT
    python examples/any_model_resnet_vit.py --out /tmp/x     # the smoke setting CI runs

Random-init weights (seeded): the numbers show the plumbing and the quantization error, not accuracy.
Every Linear/Conv2d gets 7-bit weights and 8-bit inputs (W8A8 with 7-bit weight magnitudes, which is
exact on every x86 CPU's int8 kernels). The ViT's nn.MultiheadAttention out_proj layers are read by weight
inside attention, so the recipe keeps them float with a rule; without it, prepare_qat refuses and prints it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torchvision.models import VisionTransformer, resnet18

import sam2_quant_plugin as sq
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.onnx import export_module

log = logging.getLogger("any_model_example")

#: no targets: the default rule covers the whole model
W8A8 = sq.Recipe(
    name="w8a8-any",
    default=sq.LayerRule("<default>", weight=sq.weight_spec(bits=7), activation=sq.activation_spec(bits=8)),
)
#: the ViT's attention output projections stay float (nn.MultiheadAttention never calls their forward)
KEEP_MHA_FLOAT = sq.LayerRule(r"re:encoder\.layers\.encoder_layer_\d+\.self_attention\.out_proj")


def tiny_vit(image_size: int) -> nn.Module:
    vit = VisionTransformer(
        image_size=image_size,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=10,
    )
    nn.init.normal_(vit.heads.head.weight, std=0.1)  # torchvision zero-inits the head: the output would be 0
    return vit.eval()


def run(name: str, model: nn.Module, recipe: sq.Recipe, size: int, out: Path) -> dict[str, float]:
    calib = [torch.randn(4, 3, size, size) for _ in range(4)]  # your calibration batches
    x = torch.randn(2, 3, size, size)
    frozen = sq.quantize(model, recipe, calib)  # prepare_qat -> calibrate -> freeze
    path = export_module(frozen, (x,), out / f"{name}.onnx", input_names=("x",), output_names=("y",))
    y_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        y_float, y_fq, y_int8 = model(x), frozen(x), sq.convert(frozen)(x)
    scale = float(y_float.abs().max())
    sq.save_quantized(frozen, out / f"{name}.pt")  # and back, strictly, without calibration:
    again = sq.load_quantized(out / f"{name}.pt", model)
    with torch.no_grad():
        assert torch.equal(again(x), y_fq)
    return {
        "quant_err_vs_float": float((y_fq - y_float).abs().max()) / scale,
        "onnxruntime_vs_torch": float(np.abs(y_ort - y_fq.numpy()).max()) / scale,
        "torch_int8_vs_fake_quant": float((y_int8 - y_fq).abs().max()) / scale,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resnet-size", type=int, default=64)
    ap.add_argument("--vit-size", type=int, default=32)
    ap.add_argument("--out", default="runs/examples")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(0)
    out = new_run_dir(args.out, "any_model")
    vit = tiny_vit(args.vit_size)
    try:
        sq.prepare_qat(vit, W8A8)
    except sq.RecipeError as e:
        log.info("without the exclusion rule: %s", str(e).splitlines()[1][:240])
    vit_recipe = sq.Recipe(name="w8a8-vit", default=W8A8.default, rules=(KEEP_MHA_FLOAT,))
    for name, model, recipe, size in [
        ("resnet18", resnet18(num_classes=10).eval(), W8A8, args.resnet_size),
        ("vit", vit, vit_recipe, args.vit_size),
    ]:
        errs = run(name, model, recipe, size, out)
        log.info("%s: %s", name, ", ".join(f"{k} {v:.4f}" for k, v in errs.items()))
    log.info("ONNX files and saved models in %s", out)


if __name__ == "__main__":
    main()
