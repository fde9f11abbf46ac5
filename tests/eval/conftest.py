"""Eval tests run torch on one thread: on a shared 2-core host that is several times faster than two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from sam2_quant_plugin.eval.latency import set_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    set_threads(1)
    yield
    set_threads(0)
    torch.set_num_threads(before)
