"""Which int8 kernel family this host runs: read from the kernels themselves, not assumed from flags.

A probe feeds each runtime one W8A8 dot product whose adjacent-K pair sum (``255 * 127 * 2 = 64770``)
only fits without int16 saturation: the kernel's answer says whether this host's path is ``exact``
(VNNI, AMX, u8 x u8) or ``avx2`` (pairwise int16 saturation). CPU flags are reported beside it, but the
probe decides, so an emulated CPU (``qemu-x86_64 -cpu Haswell``) or an unexpected dispatch is seen as it is.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass

import numpy as np

from ..cpu import this_cpu
from .kernels import A_CODE_MAX

log = logging.getLogger(__name__)
_W = 127
_K = 2
_EXACT = A_CODE_MAX * _W * _K  # 64770: what a non-saturating kernel returns for the probe


@dataclass(frozen=True)
class Int8Path:
    """This host's int8 GEMM behaviour per runtime, plus what the CPU flags say."""

    onnxruntime: str  # "exact" | "avx2" | "unavailable"
    torch: str  # "exact" | "avx2" | "unavailable"
    cpu: str  # the CPU's label (name, family / model, ISA): :attr:`sam2_quant_plugin.cpu.CpuInfo.label`
    cpu_flags: str  # the int8-relevant flags found in /proc/cpuinfo

    @property
    def saturates(self) -> bool:
        return "avx2" in (self.onnxruntime, self.torch)

    def describe(self) -> str:
        kind = "u8 x s8 pairs saturate in int16 (AVX2-class, no VNNI)" if self.saturates else "exact int32"
        return (
            f"int8 path: {kind}; onnxruntime={self.onnxruntime}, torch={self.torch}; "
            f"CPU {self.cpu}, int8 flags {self.cpu_flags or 'none'}"
        )

    def to_dict(self) -> dict[str, str | bool]:
        return {**asdict(self), "saturates": self.saturates, "describe": self.describe()}


def _path_from(value: float, tol: float = 0.5) -> str:
    if abs(value - _EXACT) <= tol:
        return "exact"
    if abs(value - 32767) <= tol:
        return "avx2"
    raise RuntimeError(f"int8 probe returned {value}, neither {_EXACT} (exact) nor 32767 (saturated)")


def probe_onnxruntime() -> str:
    """Run one fused ``MatMulIntegerToFloat`` on onnxruntime's CPU EP: 'exact', 'avx2' or 'unavailable'."""
    try:
        from onnx import TensorProto, helper, numpy_helper

        from ..onnx.runtime import make_session
    except ImportError:
        return "unavailable"
    w = numpy_helper.from_array(np.full((_K, 1), _W, dtype=np.int8), "w_q")
    inits = [
        w,
        numpy_helper.from_array(np.array(1.0, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "za"),
        numpy_helper.from_array(np.array(0, np.int8), "zw"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "za"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "za"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "s", "zw"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, _K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = make_session(model.SerializeToString(), "cpu")
    y = sess.run(None, {"x": np.full((1, _K), A_CODE_MAX, np.float32)})[0]
    return _path_from(float(y.reshape(-1)[0]))


def probe_torch() -> str:
    """One torch int8 Linear on the engine ``convert`` uses: 'exact', 'avx2' or 'unavailable'."""
    import torch

    from ..torchao_adapter import INT8_PROBE_OUT_STEP as OUT_STEP
    from ..torchao_adapter import int8_linear_probe

    try:
        y = int8_linear_probe(A_CODE_MAX, _W, _K)
    except (RuntimeError, NotImplementedError) as e:
        log.debug("torch int8 probe failed: %s", e)
        return "unavailable"
    return _path_from(float(torch.as_tensor(y).reshape(-1)[0]), tol=OUT_STEP / 2)


@functools.cache
def host_int8_path() -> Int8Path:
    """The int8 path of this process's host (cached: the CPU does not change while it runs)."""
    cpu = this_cpu()
    path = Int8Path(
        onnxruntime=probe_onnxruntime(), torch=probe_torch(), cpu=cpu.label, cpu_flags=cpu.int8_flags
    )
    log.debug("%s", path.describe())
    return path
