"""The deployment side of ``target_cpu``: a file made for VNNI CPUs is caught where it would run wrong.

Export proves, per fused int8 layer, whether any u8 x s8 weight pair can saturate int16 on AVX2-class
CPUs (:mod:`sam2_quant_plugin.int8.safety`) and writes the verdict into the file's metadata. A file exported
with ``target_cpu='vnni'`` whose proof failed computes wrong numbers on a CPU without VNNI. Opening such a
file on such a CPU (onnxruntime's CPU EP with its int8 fusions on) is what :func:`wrong_cpu_message` names;
:func:`sam2_quant_plugin.onnx.runtime.make_session` warns or refuses with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .host import Int8Path, host_int8_path
from .safety import SaturationReport

TARGET_KEY = "sam2_quant.target_cpu"
SAFE_KEY = "sam2_quant.int8_safe_on_avx2"  # "true" | "false": the export's saturation proof
NOTE_KEY = "sam2_quant.int8_saturation"
WRONG_CPU_POLICIES = ("warn", "error")
FLOAT_INT8_NOTE = "float model: no int8 kernels"


def safety_metadata(report: SaturationReport | None, layers: Iterable[str]) -> dict[str, str]:
    """The entries export writes beside ``target_cpu`` for one graph: whether a fused pair of the layers
    lowered in it (``layers``) can saturate, and their summary. ``report`` None: a float model."""
    if report is None:
        return {SAFE_KEY: "true", NOTE_KEY: FLOAT_INT8_NOTE}
    mine = report.within(layers)
    return {SAFE_KEY: "true" if mine.safe else "false", NOTE_KEY: mine.summary()}


def wrong_cpu_message(meta: Mapping[str, str], name: str, host: Int8Path | None = None) -> str | None:
    """Why the file with metadata ``meta`` computes wrong numbers on ``host`` (this CPU when omitted), or
    None when it is right there. Files without our metadata (other exporters, float) are never flagged."""
    if meta.get(TARGET_KEY) != "vnni" or meta.get(SAFE_KEY) == "true":
        return None
    host = host_int8_path() if host is None else host
    if host.onnxruntime != "avx2":
        return None
    return (
        f"{name} was exported with target_cpu='vnni' ({meta.get(NOTE_KEY, 'its int8 layers can saturate')}), "
        f"and this CPU's onnxruntime int8 kernels saturate u8 x s8 pairs in int16 (CPU {host.cpu}): its "
        "outputs would be wrong here. Fix: export again with --target-cpu any (e.g. the shipped w8a8 "
        "recipe, saturation-free by proof), or run the file on a CPU with AVX512-VNNI / AVX-VNNI or on the "
        "CUDA EP; `sam2-quant validate --onnx-dir BUNDLE` measures how far off it is on this CPU."
    )


def check_wrong_cpu_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`WRONG_CPU_POLICIES`, else a ValueError naming them."""
    if policy not in WRONG_CPU_POLICIES:
        raise ValueError(f"wrong_cpu must be one of {WRONG_CPU_POLICIES}, got {policy!r}")
    return policy
