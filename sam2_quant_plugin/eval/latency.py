"""Encoder latency of a student relative to the float encoder in the same runtime (median of repeats)."""

from __future__ import annotations

import logging
import statistics
import time
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


def median_seconds(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(
    run_ref: Callable[[], object], run_new: Callable[[], object], *, repeats: int = 3
) -> tuple[float, float]:
    """``(median seconds of run_new, median of per-pair ratios new/ref)``, the two interleaved.

    Interleaving makes each ratio compare runs a moment apart, so load from other jobs on a shared host
    mostly cancels (one warm-up run each first).
    """
    run_ref(), run_new()
    news, ratios = [], []
    for _ in range(repeats):
        ref = _seconds(run_ref)
        new = _seconds(run_new)
        news.append(new)
        ratios.append(new / ref)
    return statistics.median(news), statistics.median(ratios)


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
