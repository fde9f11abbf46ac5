"""onnxruntime's own weight-only quantizer as a reference point: ``MatMulNBitsQuantizer`` with RTN.

Every MatMul whose second input is a constant 2-D initializer becomes ``com.microsoft.MatMulNBits``
(round-to-nearest codes, one scale per block of ``block_size`` input rows, no zero point when symmetric).
Scales keep the weight's dtype, so on an fp16 graph this gives fp16 activations and fp16 block scales:
the graph onnxruntime's CUDA EP baseline runs. Convolutions and activation-by-activation MatMuls
(attention) are left as they are.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import onnx

from ..io.atomic import atomic_write
from .matmulnbits import MS_DOMAIN

log = logging.getLogger(__name__)


def ort_rtn_quantize(
    src: str | Path,
    dst: str | Path,
    *,
    block_size: int = 32,
    symmetric: bool = True,
) -> Path:
    """Write ``src`` with each constant-weight MatMul as a 4-bit RTN ``MatMulNBits`` to ``dst``; returns it.

    4-bit only: onnxruntime 1.32's RTN path writes every layer's config with ``bits: 4`` whatever the
    quantizer's ``bits`` argument says.
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        MatMulNBitsQuantizer,
        RTNWeightOnlyQuantConfig,
    )

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        block_size=block_size,
        is_symmetric=symmetric,
        algo_config=RTNWeightOnlyQuantConfig(),
    )
    # The RTN path draws a progress bar with print(); keep it out of our logs and the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        quantizer.process()
    proto = quantizer.model.model
    if not any(o.domain == MS_DOMAIN for o in proto.opset_import):  # the RTN path does not declare it
        proto.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    onnx.checker.check_model(proto)
    n = sum(node.op_type == "MatMulNBits" for node in proto.graph.node)
    path = atomic_write(dst, lambda tmp: onnx.save(proto, str(tmp)))
    log.info(
        "onnxruntime RTN: %d MatMul(s) -> 4-bit MatMulNBits (block %d, %s) in %s (%.1f MB)",
        n,
        block_size,
        "symmetric" if symmetric else "asymmetric",
        path,
        path.stat().st_size / 1e6,
    )
    return path
