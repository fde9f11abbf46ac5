"""Data-parallel helpers: torchrun/``init_process_group`` detection, DDP wrapping, rank-0 decisions."""

from __future__ import annotations

import logging
import os
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); gloo on CPU, nccl on CUDA."""
    if active() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return active()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend)
    log.info("joined %s process group: rank %d of %d", backend, rank(), world_size())
    return True


def wrap(module: nn.Module) -> nn.Module:
    """DDP around ``module`` when a process group is up (unused parameters allowed: SAM 2's video parts)."""
    if not active():
        return module
    device = next(module.parameters()).device
    ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def from_main(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not active():
        return value
    obj = [value]
    dist.broadcast_object_list(obj, src=0)
    return obj[0]


def agree(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (accept/reject decisions stay identical)."""
    return bool(from_main(flag))


def mean_history(history: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per-layer loss histories averaged over ranks (each rank trains on its own shard)."""
    if not active():
        return history
    gathered: list[dict[str, list[float]] | None] = [None] * world_size()
    dist.all_gather_object(gathered, history)
    keys = sorted(set().union(*(g or {} for g in gathered)))
    out = {}
    for k in keys:
        rows = [g[k] for g in gathered if g and k in g]
        out[k] = [sum(col) / len(col) for col in zip(*rows)]
    return out


def barrier() -> None:
    if active():
        dist.barrier()
