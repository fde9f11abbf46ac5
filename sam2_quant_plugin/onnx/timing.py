"""Latency of ONNX graphs on onnxruntime: median over many interleaved repeats (shared machines are noisy)."""

from __future__ import annotations

import functools
import json
import platform
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..cpu import label_from, this_cpu
from ..timer import interleaved_seconds, summary_ms
from .runtime import default_nbits_accuracy, make_session

STEADY_MEMORY_FRAMES, STEADY_OBJ_PTR_TOKENS = 7, 64


def example_feeds(path: str | Path, image_size: int) -> dict[str, np.ndarray]:
    """Random inputs for a graph of this package (shapes from the graph; dynamic axes 1, except memory
    attention's, at the steady state of SAM 2.1's video loop: ``memory_tokens`` 7 frames of the current
    feature map's tokens (``num_maskmem``), ``obj_ptr_tokens`` 64 (16 object pointers of 4 tokens)), and the
    video mask decoder's ``prompt_tokens`` 2 (a frame without new prompts)."""
    rng = np.random.default_rng(0)
    feeds = {}
    inputs = list(onnx.load(str(path), load_external_data=False).graph.input)
    static = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in inputs}
    frame = static["current"][0] if static.get("current") and static["current"][0] > 0 else 1
    steady = {
        "memory_tokens": STEADY_MEMORY_FRAMES * frame,
        "obj_ptr_tokens": STEADY_OBJ_PTR_TOKENS,
        "prompt_tokens": 2,  # a propagated frame: no prompt, SAM's padding point and its pad token
    }
    for inp in inputs:
        dims = [
            d.dim_value if d.dim_value > 0 else steady.get(d.dim_param, 1)
            for d in inp.type.tensor_type.shape.dim
        ]
        if inp.name == "point_coords":
            feeds[inp.name] = (rng.random(dims) * image_size).astype(np.float32)
        elif inp.name == "point_labels":
            feeds[inp.name] = np.ones(dims, dtype=np.int32)
        else:
            feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def _round_robin(
    sessions: dict[str, ort.InferenceSession],
    paths: dict[str, Path],
    image_size: int,
    repeats: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Seconds of each ``session.run`` on :func:`example_feeds`, one run of each session per round."""
    feeds = {k: example_feeds(p, image_size) for k, p in paths.items()}
    calls = {k: functools.partial(sess.run, None, feeds[k]) for k, sess in sessions.items()}
    return interleaved_seconds(calls, repeats=repeats, warmup=warmup)


def time_interleaved(
    paths: dict[str, Path],
    image_size: int,
    *,
    provider: str = "cpu",
    threads: int | None = None,
    repeats: int = 20,
    warmup: int = 2,
    optimization: str = "all",
) -> dict[str, dict[str, float | int | str]]:
    """Median / p10 / p90 milliseconds of one ``session.run`` of each graph on random inputs.

    The graphs are timed round-robin (one run of each per round, :mod:`sam2_quant_plugin.timer`), so on
    a shared machine every graph sees the same load and their medians compare fairly.
    """
    sessions = {k: make_session(p, provider, threads, optimization=optimization) for k, p in paths.items()}
    seconds = _round_robin(sessions, paths, image_size, repeats, warmup)
    return {
        k: {
            "provider": sessions[k].get_providers()[0],
            **summary_ms(v),
            "repeats": repeats,
            "threads": threads if threads is not None else "default",
            "interleaved": True,
        }
        for k, v in seconds.items()
    }


def profile_kernels(
    paths: dict[str, Path],
    image_size: int,
    *,
    threads: int | None = None,
    repeats: int = 10,
    warmup: int = 2,
) -> dict[str, dict[str, float]]:
    """Kernel milliseconds per run, by op type, of each graph on the CPU EP (onnxruntime's own profiler,
    warm-up runs included in the average), the graphs run round-robin as :func:`time_interleaved`.
    ``{"key": {"MatMulIntegerToFloat": 20.1, ...}}``; an op's time is the sum over its nodes."""
    with tempfile.TemporaryDirectory(prefix="sam2_quant_profile_") as tmp:
        sessions = {
            k: make_session(p, "cpu", threads, profile_prefix=Path(tmp) / f"profile_{i}")
            for i, (k, p) in enumerate(paths.items())
        }
        _round_robin(sessions, paths, image_size, repeats, warmup)
        out = {}
        for k, sess in sessions.items():
            by_op: Counter[str] = Counter()
            for e in json.loads(Path(sess.end_profiling()).read_text()):
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    by_op[e["args"]["op_name"]] += e["dur"]
            out[k] = {op: us / (repeats + warmup) / 1e3 for op, us in by_op.most_common()}
    return out


def environment() -> dict[str, str]:
    """Device and versions for reports."""
    cpu = this_cpu()
    return {
        "cpu": cpu.name,
        # a VM's model name can be generic ("AMD EPYC"): family/model tell the generations apart
        "cpu_family_model": cpu.family_model,
        "cpu_isa": cpu.isa,
        "cpu_count": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "ort_providers": ",".join(ort.get_available_providers()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "nbits_accuracy_level": _nbits_level(),
    }


def cpu_label(env: dict[str, str] | None = None) -> str:
    """'AMD EPYC (family 23 model 1) [avx2]': the CPU as every figure names it (``env``: a saved
    :func:`environment`; this host's CPU when omitted)."""
    if env is None:
        return this_cpu().label
    return label_from(env["cpu"], env.get("cpu_family_model", "?/?"), env.get("cpu_isa", ""))


def _nbits_level() -> str:
    """The weight-only MatMulNBits accuracy level this process's sessions use, as a report shows it."""
    level = default_nbits_accuracy()
    return "4 (onnxruntime's default)" if level is None else str(level)
