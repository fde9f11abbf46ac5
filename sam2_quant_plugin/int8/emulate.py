"""Run a frozen model with its fused int8 Linears computed as a chosen x86 kernel family would.

``emulated(model, 'avx2')`` returns a copy whose W8A8 Linears quantize their input the way onnxruntime's
``QuantizeLinear`` does, multiply the integer codes with :func:`~.kernels.qgemm` on that path and scale
back. Comparing it with the fake-quant model gives the parity an AVX2-class CPU would get, on any host.
Layers whose weights cannot saturate are left as they are (exact paths agree with fake-quant already).
"""

from __future__ import annotations

import copy
import types

import numpy as np
import torch
from torch import nn

from ..api import remove_input_hook
from .kernels import PATHS, matmul_integer_to_float, quantize_linear
from .safety import Int8Layer, int8_layers


def _int8_forward(spec: Int8Layer, path: str):  # type: ignore[no-untyped-def]
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = emulated_linear(spec, x.detach().reshape(-1, shape[-1]).float().numpy(), path)
        return torch.from_numpy(y).reshape(*shape[:-1], y.shape[-1]).to(x.dtype)

    return forward


def emulated(model: nn.Module, path: str = "avx2", *, only_risky: bool = True) -> nn.Module:
    """A copy of frozen ``model`` whose fused int8 Linears run the ``path`` kernel model (inference only).

    ``only_risky``: emulate just the layers whose weight pairs can saturate (the rest are exact on every
    path, so the copy equals the fake-quant model there); False emulates every fused layer.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    model = copy.deepcopy(model).eval()
    for name, spec in int8_layers(model).items():
        if only_risky and not spec.risky_pairs:
            continue
        layer = model.get_submodule(name)
        remove_input_hook(layer)  # the input quantizer is part of the emulated kernel
        layer.forward = types.MethodType(_int8_forward(spec, path), layer)
    return model


def emulated_linear(spec: Int8Layer, x: np.ndarray, path: str) -> np.ndarray:
    """One fused Linear on float input ``x [M, K]`` through the kernel model of ``path``."""
    a = quantize_linear(x, spec.a_scale, spec.a_zero_point)
    return matmul_integer_to_float(
        a, spec.a_scale, spec.a_zero_point, spec.w_codes.T, spec.w_scale, spec.bias, path
    )
