"""Arguments shared by sub-commands: model, checkpoint, image size, images, output folders."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..device import describe, resolve_device
from ..errors import ConfigError
from ..models.info import model_info
from ..onnx.runtime import NBITS_ACCURACY_LEVELS, default_nbits_accuracy, set_default_nbits_accuracy
from ..sam2.build import build_sam2_model
from ..seeds import SEED_FIX, seed_problem

log = logging.getLogger("sam2-quant")


def add_model_arguments(p: argparse.ArgumentParser, *, image_size: int = 512) -> None:
    p.add_argument("--config", default="sam2.1_hiera_t", help="SAM 2 config: sam2.1_hiera_{t,s,b+,l}")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="SAM 2 checkpoint (.pt). Without it the model is SEEDED RANDOM INIT (plumbing only).",
    )
    p.add_argument("--image-size", type=int, default=image_size, help="model input size (multiple of 32)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed for random init and sampling")
    p.add_argument(
        "--device",
        default="auto",
        help="where PyTorch steps run (calibration, QAT, GPTQ, CDPQ, the torch side of eval): cpu, cuda, "
        "cuda:N or auto (default: CUDA when torch sees a GPU). ONNX export and onnxruntime are unaffected",
    )


def seed_arg(text: str) -> int:
    """``--seed``: a whole number torch's generators take (argparse reports the message, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r:.40} is not a whole number. {SEED_FIX}") from None
    problem = seed_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem}. {SEED_FIX}")
    return value


def add_nbits_accuracy_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nbits-accuracy-level",
        type=int,
        default=None,
        choices=NBITS_ACCURACY_LEVELS,
        metavar="LEVEL",
        help="activation precision of the MatMulNBits kernels onnxruntime's CPU EP makes from weight-only "
        "DequantizeLinear -> MatMul pairs (session.qdq_matmulnbits_accuracy_level) in every session this "
        "command opens: 0 float activations (PyTorch's numbers), 4 int8 per block of 32 (onnxruntime's "
        "default: faster, a little less faithful; 2/3: fp16/bf16). Set the same in your own sessions. "
        "W8A8 layers and MatMulNBits nodes in the file are unaffected",
    )


@contextmanager
def runtime_arguments(args: argparse.Namespace) -> Iterator[None]:
    """Process-wide onnxruntime settings from the parsed arguments (sub-commands that have them), restored
    when the command returns (a caller running several commands in one process gets no leftovers)."""
    level, before = getattr(args, "nbits_accuracy_level", None), default_nbits_accuracy()
    if level is not None:
        set_default_nbits_accuracy(level)
        log.info("onnxruntime sessions: session.qdq_matmulnbits_accuracy_level=%d", level)
    try:
        yield
    finally:
        set_default_nbits_accuracy(before)


def add_calib_video_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--calib-video",
        default=None,
        help="folder of JPEG frames (00000.jpg, ...): also calibrate on this clip through SAM 2's video "
        "predictor (first-frame point prompts propagated), so memory attention and the memory encoder see "
        "memories of your footage; the encoder sees its frames too. A recipe over memory layers without it "
        "calibrates on the bundled 8-frame clip",
    )


def add_graphs_argument(p: argparse.ArgumentParser, *, extra_help: str = "") -> None:
    p.add_argument(
        "--graphs",
        nargs="+",
        default=None,
        choices=("memory_attention", "memory_encoder", "sam_mask_decoder"),
        help="also export these video graphs beside encoder + decoder (memory attention is traced with "
        "real-valued RoPE patched into the export's copy; sam_mask_decoder: the mask decoder as the video "
        "loop calls it, so `track` runs it in onnxruntime too)" + extra_help,
    )


def check_calib_video(args: argparse.Namespace, *, has_recipe: bool = True) -> None:
    """A bad ``--calib-video`` fails before the model is built; with no recipe it would calibrate nothing."""
    if getattr(args, "calib_video", None) is None:
        return
    if not has_recipe:
        raise ConfigError(
            "--calib-video calibrates a recipe's quantizers, and no --recipe was given (a float export "
            "calibrates nothing). Fix: add --recipe (e.g. w8a8_video) or drop --calib-video."
        )
    from ..sam2.video import video_frames

    video_frames(args.calib_video)


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
