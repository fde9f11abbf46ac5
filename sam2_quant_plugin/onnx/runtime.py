"""onnxruntime sessions, the package's one factory: provider choice with a clear message when CUDA is missing,
optimization level, thread count and weight-only accuracy level (per call, or a process-wide default),
optimized-graph dumps.

One vocabulary everywhere (bench, eval, validate, infer, parity): ``provider`` 'cpu' | 'cuda',
``optimization`` one of :data:`OPT_LEVELS`, ``threads`` an intra-op count (None: the process default),
``nbits_accuracy`` the accuracy level of the ``MatMulNBits`` kernels onnxruntime makes from weight-only
``DequantizeLinear -> MatMul`` pairs (None: the process default, else onnxruntime's own, 4).
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from ..errors import BundleError, ConfigError, Int8Error
from ..int8.deploy import check_wrong_cpu_policy, wrong_cpu_message

log = logging.getLogger(__name__)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DEFAULT_THREADS = {"n": 0}
_WARNED_WRONG_CPU: set[str] = set()
#: ``session.qdq_matmulnbits_accuracy_level`` values: 0 (or 1) float activations, 2 fp16, 3 bf16,
#: 4 int8 per block of 32.
NBITS_ACCURACY_LEVELS = (0, 1, 2, 3, 4)
_NBITS_CONFIG_KEY = "session.qdq_matmulnbits_accuracy_level"
_DEFAULT_NBITS_ACCURACY: dict[str, int | None] = {"level": None}


def set_default_threads(n: int) -> None:
    """Intra-op threads of the sessions made from now on without ``threads`` (0: onnxruntime's default)."""
    _DEFAULT_THREADS["n"] = max(0, int(n))


def default_threads() -> int | None:
    """The count :func:`make_session` uses when ``threads`` is None (None: onnxruntime's default)."""
    return _DEFAULT_THREADS["n"] or None


def check_nbits_accuracy(level: int) -> int:
    """``level`` when it is one of :data:`NBITS_ACCURACY_LEVELS`, else a ConfigError naming the choices."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in NBITS_ACCURACY_LEVELS:
        raise ConfigError(
            f"weight-only accuracy level {level!r} is not one of {list(NBITS_ACCURACY_LEVELS)}. Fix: pass "
            "0 (float activations: PyTorch's numbers) or 4 (int8 activations per block of 32: onnxruntime's "
            "default, faster on CPU); 2 and 3 are fp16/bf16"
        )
    return level


def set_default_nbits_accuracy(level: int | None) -> None:
    """Accuracy level of the weight-only MatMulNBits kernels in sessions made from now on without
    ``nbits_accuracy`` (None: onnxruntime's default)."""
    _DEFAULT_NBITS_ACCURACY["level"] = None if level is None else check_nbits_accuracy(level)


def default_nbits_accuracy() -> int | None:
    """The level :func:`make_session` uses when ``nbits_accuracy`` is None (None: onnxruntime's default)."""
    return _DEFAULT_NBITS_ACCURACY["level"]


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
    nbits_accuracy: int | None = None,
    wrong_cpu: str = "warn",
) -> ort.InferenceSession:
    """An ``InferenceSession`` for ``path`` (an ONNX file, or a serialized model) on ``provider``.

    A missing CUDA provider logs a warning naming it and falls back to CPU. ``threads`` sets the intra-op
    thread count (None: :func:`default_threads`, which is onnxruntime's default unless
    :func:`set_default_threads` set one). ``optimization`` is one of :data:`OPT_LEVELS`
    ('disable' runs Q/DQ as written: simulated quantization; 'all' lets the CPU EP fuse them into int8
    kernels). ``optimized_model_path`` saves the graph after optimization (to inspect the fused nodes);
    ``profile_prefix`` turns on onnxruntime's profiler (``session.end_profiling()`` returns its JSON file).
    ``nbits_accuracy`` (None: :func:`default_nbits_accuracy`) sets ``session.qdq_matmulnbits_accuracy_level``,
    the activation precision of the ``MatMulNBits`` kernels the CPU EP makes from weight-only
    ``DequantizeLinear -> MatMul`` pairs: 0 keeps float activations (PyTorch's numbers), 4 (onnxruntime's
    default) rounds them to int8 per block of 32. ``MatMulNBits`` nodes written into a file keep their own
    ``accuracy_level`` attribute.

    A file exported with ``target_cpu='vnni'`` whose int8 layers can saturate, opened on a CPU whose int8
    kernels saturate (with the CPU EP's int8 fusions on), computes wrong numbers: ``wrong_cpu='warn'`` logs
    that with the fix, ``'error'`` raises :class:`Int8Error` (the deployment commands, ``infer`` and
    ``track``).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {provider!r}")
    check_wrong_cpu_policy(wrong_cpu)
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
    level = default_nbits_accuracy() if nbits_accuracy is None else check_nbits_accuracy(nbits_accuracy)
    if level is not None:
        so.add_session_config_entry(_NBITS_CONFIG_KEY, str(level))
    providers = [PROVIDERS[provider]] + (["CPUExecutionProvider"] if provider != "cpu" else [])
    where = "an in-memory model" if isinstance(path, bytes) else str(path)
    try:
        model = path if isinstance(path, bytes) else str(path)
        sess = ort.InferenceSession(model, sess_options=so, providers=providers)
    except Exception as e:  # InvalidProtobuf, INVALID_ARGUMENT (e.g. external data outside the folder), ...
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise BundleError(
            f"onnxruntime cannot load {where} ({type(e).__name__}: {first}). Fix: export the model again; "
            "keep any external-data files beside the .onnx file, inside its folder."
        ) from e
    if optimization != "disable" and sess.get_providers()[0] == "CPUExecutionProvider":
        problem = wrong_cpu_message(sess.get_modelmeta().custom_metadata_map, where)
        if problem is not None and wrong_cpu == "error":
            raise Int8Error(problem)
        if problem is not None and where not in _WARNED_WRONG_CPU:  # once per file: reports open several
            _WARNED_WRONG_CPU.add(where)
            log.warning("!!! %s !!!", problem)
    return sess
