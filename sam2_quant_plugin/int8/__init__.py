"""int8 on every x86 CPU: exact models of the int8 kernels, the host's int8 path, saturation checks.

See :mod:`.kernels` for the AVX2 pair saturation this package guards against.
"""

from .emulate import emulated, emulated_linear
from .host import Int8Path, host_int8_path
from .kernels import (
    matmul_integer_to_float,
    pair_headroom,
    qgemm,
    quantize_linear,
    risky_rows,
    saturating_pairs,
)
from .safety import TARGET_CPUS, UNSAFE_FIX, Int8Layer, SaturationReport, int8_layers, saturation_report

__all__ = [
    "TARGET_CPUS",
    "UNSAFE_FIX",
    "Int8Layer",
    "Int8Path",
    "SaturationReport",
    "emulated",
    "emulated_linear",
    "host_int8_path",
    "int8_layers",
    "matmul_integer_to_float",
    "pair_headroom",
    "qgemm",
    "quantize_linear",
    "risky_rows",
    "saturating_pairs",
    "saturation_report",
]
