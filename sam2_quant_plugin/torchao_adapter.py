"""The single boundary to ``torch.ao.quantization`` (deprecated upstream in favour of torchao).

Every import of torch.ao lives here; the rest of the package imports the names it needs from this
module. Recipes become torch.ao ``QConfig`` objects here, and only here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import torch.ao.nn.qat as nnqat
    import torch.ao.nn.quantized as nnq
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization import convert as _ao_convert
    from torch.ao.quantization import prepare_qat as _ao_prepare_qat
    from torch.ao.quantization.fake_quantize import FakeQuantize, FakeQuantizeBase
    from torch.ao.quantization.observer import ObserverBase

__all__ = [
    "QAT_TYPES",
    "QCONFIG_ATTR",
    "WEIGHT_FQ",
    "FakeQuantize",
    "FakeQuantizeBase",
    "ObserverBase",
    "QConfig",
    "QConfigMapping",
    "build_qconfig_mapping",
    "ao_convert",
    "ao_prepare_qat",
    "quantize_module",
    "dequantize_module",
    "quiet_torch_ao",
    "select_engine",
    "int8_linear_probe",
    "INT8_PROBE_OUT_STEP",
]

#: The module attribute torch.ao ``prepare_qat`` and ``convert`` read (set with setattr: nn.Module's typed
#: ``__setattr__`` takes only tensors and modules).
QCONFIG_ATTR = "qconfig"

#: The attribute torch.ao QAT ``Linear``/``Conv2d`` hold their weight fake-quant in.
WEIGHT_FQ = "weight_fake_quant"

#: torch.ao QAT classes that ``prepare_qat`` swaps in for Linear / Conv2d.
QAT_TYPES: tuple[type[nnqat.Linear], type[nnqat.Conv2d]] = (nnqat.Linear, nnqat.Conv2d)


@contextlib.contextmanager
def quiet_torch_ao() -> Iterator[None]:
    """Silence torch.ao's per-call deprecation warning (the one place we filter it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated.*")
        # convert builds qint8 tensors, whose creation functions torch also marks deprecated
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        yield


def ao_prepare_qat(model: nn.Module, qconfigs: dict[str, QConfig]) -> nn.Module:
    """Attach ``qconfigs`` (module name -> QConfig) and run torch.ao ``prepare_qat`` in place.

    Only the named leaves get a qconfig, so no observer lands on LayerNorms or other modules.
    ``prepare_qat`` asserts training mode; the caller's mode is restored afterwards.
    """
    was_training = model.training
    for name, qc in qconfigs.items():
        setattr(model.get_submodule(name), QCONFIG_ATTR, qc)
    model.train()
    with quiet_torch_ao():
        _ao_prepare_qat(model, inplace=True)
    model.train(was_training)
    return model


def ao_convert(model: nn.Module) -> nn.Module:
    """torch.ao ``convert`` in place (QAT Linear/Conv2d -> quantized CPU kernels)."""
    with quiet_torch_ao():
        return _ao_convert(model.eval(), inplace=True)


def quantize_module(scale: float, zero_point: int, dtype: torch.dtype) -> nn.Module:
    """torch.ao's float -> quantized tensor module (what ``QuantStub`` becomes after convert)."""
    return nnq.Quantize(scale, zero_point, dtype)


def dequantize_module() -> nn.Module:
    return nnq.DeQuantize()


def select_engine() -> str:
    """Pick the best available quantized CPU engine (x86 > fbgemm > qnnpack) and make it current."""
    engines = torch.backends.quantized.supported_engines
    for e in ("x86", "fbgemm", "qnnpack"):
        if e in engines:
            torch.backends.quantized.engine = e
            return e
    raise RuntimeError(f"no quantized CPU engine available (supported: {engines})")


INT8_PROBE_OUT_STEP = 256.0


def int8_linear_probe(a_code: int, w_code: int, k: int) -> torch.Tensor:
    """One torch int8 Linear (current best engine) on uint8 input codes ``a_code`` and int8 weight codes
    ``w_code`` over ``k`` inputs, unit scales: returns the float output (``a_code * w_code * k`` if exact)."""
    select_engine()
    with quiet_torch_ao():
        lin = nnq.Linear(k, 1, bias_=False, dtype=torch.qint8)
        w = torch.quantize_per_tensor(torch.full((1, k), float(w_code)), 1.0, 0, torch.qint8)
        lin.set_weight_bias(w, None)
        lin.scale, lin.zero_point = INT8_PROBE_OUT_STEP, 0  # uint8 output: 255 steps hold the exact sum
        x = torch.quantize_per_tensor(torch.full((1, k), float(a_code)), 1.0, 0, torch.quint8)
        return lin(x).dequantize()


def build_qconfig(weight_fq: type | object, output_observer: type | object) -> QConfig:
    """A torch.ao ``QConfig`` from two module factories (the weight fake-quant, the output observer)."""
    return QConfig(activation=output_observer, weight=weight_fq)


def build_qconfig_mapping(qconfigs: dict[str, QConfig]) -> QConfigMapping:
    """A torch.ao ``QConfigMapping`` with one ``set_module_name`` entry per layer (no global qconfig)."""
    mapping = QConfigMapping()
    for name, qc in qconfigs.items():
        mapping.set_module_name(name, qc)
    return mapping
