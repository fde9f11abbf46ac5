"""Shared fixtures: the real tiny SAM 2 at a small input size, bundled photos, quiet torch.ao."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from sam2_quant_plugin.onnx.runtime import default_threads, set_default_threads
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image, to_model_input
from tests._utils import torch_threads

SMALL = 256  # tiny SAM 2 encoder forward ~0.4 s at 256 px on one CPU core


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


def _workers() -> int:
    """How many pytest-xdist workers share this machine (1 without xdist)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


@pytest.fixture(autouse=True)
def _threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """One intra-op thread for fast tests (small tensors gain nothing from a pool, and spin-waiting threads
    slow them ~100x on a busy 2-core machine); two for the slow tests on the real tiny SAM 2. Under
    pytest-xdist the cores are shared out: no worker's torch or onnxruntime pool spins on another's core."""
    share = max(1, (os.cpu_count() or 1) // _workers())
    n = min(share, 2) if request.node.get_closest_marker("slow") else 1
    if _workers() == 1:
        with torch_threads(n):
            yield
        return
    previous = default_threads() or 0
    set_default_threads(n)
    try:
        with torch_threads(n):
            yield
    finally:
        set_default_threads(previous)


@pytest.fixture(scope="session")
def tiny_sam2() -> torch.nn.Module:
    """Real sam2.1_hiera_t, seeded random init, 256 px. Session-wide: never modify it in place."""
    logging.getLogger("sam2_quant_plugin.sam2.build").setLevel(logging.ERROR)
    return build_sam2_model("sam2.1_hiera_t", image_size=SMALL, seed=0)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return [load_image(p) for p in bundled_images()]


@pytest.fixture(scope="session")
def photo_batch(photos: list[np.ndarray]) -> torch.Tensor:
    """The bundled photos as model input [2, 3, 256, 256]."""
    return to_model_input(photos, SMALL)
