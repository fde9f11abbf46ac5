"""Arguments shared by sub-commands: model, checkpoint, image size, images, output folders."""

from __future__ import annotations

import argparse
import logging

from torch import nn

from ..device import describe, resolve_device
from ..models.info import model_info
from ..sam2.build import build_sam2_model

log = logging.getLogger("sam2-quant")


def add_model_arguments(p: argparse.ArgumentParser, *, image_size: int = 512) -> None:
    p.add_argument("--config", default="sam2.1_hiera_t", help="SAM 2 config: sam2.1_hiera_{t,s,b+,l}")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="SAM 2 checkpoint (.pt). Without it the model is SEEDED RANDOM INIT (plumbing only).",
    )
    p.add_argument("--image-size", type=int, default=image_size, help="model input size (multiple of 32)")
    p.add_argument("--seed", type=int, default=0, help="seed for random init and sampling")
    p.add_argument(
        "--device",
        default="auto",
        help="where PyTorch steps run (calibration, QAT, GPTQ, CDPQ, the torch side of eval): cpu, cuda, "
        "cuda:N or auto (default: CUDA when torch sees a GPU). ONNX export and onnxruntime are unaffected",
    )


def build_model(args: argparse.Namespace) -> nn.Module:
    device = resolve_device(getattr(args, "device", "auto"))
    log.info("PyTorch device: %s", describe(device))
    return build_sam2_model(
        args.config, args.checkpoint, image_size=args.image_size, seed=args.seed, device=device
    )


def weights_label(model: nn.Module) -> str:
    """What weights a report is about: the checkpoint path or 'RANDOM INIT (seed=N)'."""
    w = model_info(model).weights
    return w if not w.startswith("random") else f"RANDOM INIT ({w}); not a trained SAM 2"
