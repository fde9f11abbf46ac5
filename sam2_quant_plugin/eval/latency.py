"""What eval times: one encoder call of a torch model or of an ONNX file, and the threads both use.

The timing itself is :mod:`sam2_quant_plugin.timer` (interleaved rounds, medians).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..onnx.runtime import make_session, missing_provider_message, set_default_threads

log = logging.getLogger(__name__)

NO_CUDA = "n/a (no CUDA EP)"


def set_threads(n: int) -> None:
    """Threads for torch (process-wide) and for the onnxruntime sessions made from now on (0: default).

    On a host shared with other jobs, 1 thread is both faster and far more stable than oversubscribing.
    """
    set_default_threads(n)
    if n > 0:
        torch.set_num_threads(n)


def torch_encoder_runner(model: nn.Module, x: Tensor) -> Callable[[], object]:
    """One ``model.image_encoder(x)`` call without autograd (torch module or onnxruntime-backed encoder)."""

    def run() -> object:
        with torch.no_grad():
            return model.image_encoder(x)

    return run


def cuda_available() -> bool:
    return missing_provider_message("cuda") is None


def ort_runner(path: str | Path, x: Tensor, provider: str, *, optimize: bool = True) -> Callable[[], object]:
    """One session run of an encoder ONNX file on ``provider`` ('cpu' | 'cuda'; ``optimize=False``:
    ORT_DISABLE_ALL)."""
    sess = make_session(path, provider, optimization="all" if optimize else "disable")
    feed = {sess.get_inputs()[0].name: x.numpy()}
    return lambda: sess.run(None, feed)
