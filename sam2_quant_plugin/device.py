"""Where PyTorch work runs: ``--device cpu|cuda|auto`` and ``device=`` on the verbs, resolved in one place.

``auto`` is CUDA when a GPU is present, else the CPU. Under torchrun each rank takes the GPU of its
``LOCAL_RANK``. Inputs follow the model (``model_device``), so loops and tasks never hard-code a device;
ONNX export and torch's int8 ``convert`` always run on a CPU copy.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None: CUDA if available else CPU; ``cuda`` without a GPU is a :class:`DeviceError`."""
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = (device or "auto").lower()
    kind = spec.split(":")[0]
    if kind not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; use one of {DEVICES} (or cuda:N)")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
        spec = kind
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} was asked for but torch sees no CUDA GPU (torch {torch.__version__}). "
            "Fix: pass --device cpu (or auto), or install a CUDA build of torch on a GPU machine"
        )
    if spec == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank
        spec = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    dev = torch.device(spec)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"{spec} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: for logs and result files."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
