"""TorchScript-exporter symbolics that lower fake-quant of any 2..8-bit range to ONNX.

torch's own symbolic accepts only the ranges (0, 127), (0, 255) and (-128, 127). Ours emits
``QuantizeLinear -> DequantizeLinear`` for a full int8/uint8 range and
``QuantizeLinear -> Clip(qmin, qmax) -> DequantizeLinear`` for any narrower range (2..7 bits, or 8-bit
narrow range such as [-127, 127]), always storing codes as int8 (signed) or uint8 (unsigned).
Per-tensor scales and zero points are emitted as scalars, the form onnxruntime's QDQ fusions expect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

from ..errors import ExportError

_PER_TENSOR = "aten::fake_quantize_per_tensor_affine"
_PER_CHANNEL = "aten::fake_quantize_per_channel_affine"
_INT8, _UINT8, _FLOAT = 3, 2, 1  # onnx.TensorProto data types


def _code_type(qmin: int, qmax: int) -> tuple[int, torch.dtype]:
    if qmin >= -128 and qmax <= 127 and qmin < 0:
        return _INT8, torch.int8
    if qmin >= 0 and qmax <= 255:
        return _UINT8, torch.uint8
    raise ExportError(
        f"fake-quant range [{qmin}, {qmax}] does not fit int8 or uint8; only 2..8-bit ranges lower to ONNX"
    )


def _lower(g, x, scale, zero_point, qmin: int, qmax: int, axis: int | None):  # type: ignore[no-untyped-def]
    onnx_type, torch_type = _code_type(qmin, qmax)
    scale = g.op("Cast", scale, to_i=_FLOAT)
    zero_point = g.op("Cast", zero_point, to_i=onnx_type)
    if axis is None:  # per-tensor: scalar qparams
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.int64))
        scale = g.op("Reshape", scale, empty)
        zero_point = g.op("Reshape", zero_point, empty)
        kw = {}
    else:
        kw = {"axis_i": axis}
    q = g.op("QuantizeLinear", x, scale, zero_point, **kw)
    full = (-128, 127) if onnx_type == _INT8 else (0, 255)
    if (qmin, qmax) != full:
        lo = g.op("Constant", value_t=torch.tensor(qmin, dtype=torch_type))
        hi = g.op("Constant", value_t=torch.tensor(qmax, dtype=torch_type))
        q = g.op("Clip", q, lo, hi)
    return g.op("DequantizeLinear", q, scale, zero_point, **kw)


@symbolic_helper.parse_args("v", "v", "v", "i", "i")
def _per_tensor(g, x, scale, zero_point, quant_min, quant_max):  # type: ignore[no-untyped-def]
    return _lower(g, x, scale, zero_point, quant_min, quant_max, None)


@symbolic_helper.parse_args("v", "v", "v", "i", "i", "i")
def _per_channel(g, x, scale, zero_point, axis, quant_min, quant_max):  # type: ignore[no-untyped-def]
    return _lower(g, x, scale, zero_point, quant_min, quant_max, axis)


@contextlib.contextmanager
def lowbit_symbolics(opset: int) -> Iterator[None]:
    """Use these symbolics for the duration of one ``torch.onnx.export(..., dynamo=False)`` call."""
    register_custom_op_symbolic(_PER_TENSOR, _per_tensor, opset)
    register_custom_op_symbolic(_PER_CHANNEL, _per_channel, opset)
    try:
        yield
    finally:
        for name in (_PER_TENSOR, _PER_CHANNEL):
            with contextlib.suppress(Exception):
                unregister_custom_op_symbolic(name, opset)


@contextlib.contextmanager
def no_mha_fastpath() -> Iterator[None]:
    """Trace ``nn.MultiheadAttention`` through its composite path: the inference fast path's fused
    ``aten::_native_multi_head_attention`` has no ONNX symbolic."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)
