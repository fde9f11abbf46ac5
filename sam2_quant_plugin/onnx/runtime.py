"""onnxruntime sessions, the package's one factory: provider choice with a clear message when CUDA is missing,
optimization level, thread count (per call, or a process-wide default), optimized-graph dumps.

One vocabulary everywhere (bench, eval, validate, infer, parity): ``provider`` 'cpu' | 'cuda',
``optimization`` one of :data:`OPT_LEVELS`, ``threads`` an intra-op count (None: the process default).
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from ..errors import BundleError

log = logging.getLogger(__name__)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DEFAULT_THREADS = {"n": 0}


def set_default_threads(n: int) -> None:
    """Intra-op threads of the sessions made from now on without ``threads`` (0: onnxruntime's default)."""
    _DEFAULT_THREADS["n"] = max(0, int(n))


def default_threads() -> int | None:
    """The count :func:`make_session` uses when ``threads`` is None (None: onnxruntime's default)."""
    return _DEFAULT_THREADS["n"] or None


def missing_provider_message(provider: str) -> str | None:
    """None when ``provider`` ('cpu' | 'cuda') is available, else one line naming what is missing."""
    name = PROVIDERS[provider]
    available = ort.get_available_providers()
    if name in available:
        return None
    return (
        f"{name} is not available in this onnxruntime {ort.__version__} (available: {', '.join(available)}); "
        "install onnxruntime-gpu with a matching CUDA/cuDNN to use it"
    )


def available_eps() -> list[str]:
    """'cpu' and, when usable, 'cuda'."""
    return [p for p in ("cpu", "cuda") if missing_provider_message(p) is None]


def make_session(
    path: str | Path | bytes,
    provider: str = "cpu",
    threads: int | None = None,
    *,
    optimization: str = "all",
    optimized_model_path: str | Path | None = None,
    profile_prefix: str | Path | None = None,
) -> ort.InferenceSession:
    """An ``InferenceSession`` for ``path`` (an ONNX file, or a serialized model) on ``provider``.

    A missing CUDA provider logs a warning naming it and falls back to CPU. ``threads`` sets the intra-op
    thread count (None: :func:`default_threads`, which is onnxruntime's default unless
    :func:`set_default_threads` set one). ``optimization`` is one of :data:`OPT_LEVELS`
    ('disable' runs Q/DQ as written: simulated quantization; 'all' lets the CPU EP fuse them into int8
    kernels). ``optimized_model_path`` saves the graph after optimization (to inspect the fused nodes);
    ``profile_prefix`` turns on onnxruntime's profiler (``session.end_profiling()`` returns its JSON file).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {provider!r}")
    if optimization not in OPT_LEVELS:
        raise ValueError(f"optimization must be one of {sorted(OPT_LEVELS)}, got {optimization!r}")
    msg = missing_provider_message(provider)
    if msg is not None:
        log.warning("%s; falling back to CPUExecutionProvider", msg)
        provider = "cpu"
    so = ort.SessionOptions()
    so.graph_optimization_level = OPT_LEVELS[optimization]
    so.log_severity_level = 3
    threads = default_threads() if threads is None else threads
    if threads is not None:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    if profile_prefix is not None:
        so.enable_profiling, so.profile_file_prefix = True, str(profile_prefix)
    providers = [PROVIDERS[provider]] + (["CPUExecutionProvider"] if provider != "cpu" else [])
    try:
        model = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(model, sess_options=so, providers=providers)
    except Exception as e:  # InvalidProtobuf, INVALID_ARGUMENT (e.g. external data outside the folder), ...
        first = (str(e).strip().splitlines() or [""])[0][:300]
        where = "an in-memory model" if isinstance(path, bytes) else path
        raise BundleError(
            f"onnxruntime cannot load {where} ({type(e).__name__}: {first}). Fix: export the model again; "
            "keep any external-data files beside the .onnx file, inside its folder."
        ) from e
