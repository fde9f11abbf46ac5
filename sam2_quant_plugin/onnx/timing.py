"""Latency of ONNX graphs on onnxruntime: median over many repeats (shared machines are noisy)."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from .runtime import make_session


def example_feeds(path: str | Path, image_size: int) -> dict[str, np.ndarray]:
    """Random inputs for an encoder or decoder graph of this package (shapes from the graph)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in onnx.load(str(path), load_external_data=False).graph.input:
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
        if inp.name == "point_coords":
            feeds[inp.name] = (rng.random(dims) * image_size).astype(np.float32)
        elif inp.name == "point_labels":
            feeds[inp.name] = np.ones(dims, dtype=np.int32)
        else:
            feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def time_graph(
    path: str | Path,
    image_size: int,
    *,
    provider: str = "cpu",
    threads: int | None = None,
    repeats: int = 20,
    warmup: int = 3,
    optimization: str = "all",
) -> dict[str, float | int | str]:
    """Median / p10 / p90 milliseconds of one ``session.run`` on random inputs."""
    sess = make_session(path, provider, threads, optimization=optimization)
    feeds = example_feeds(path, image_size)
    for _ in range(warmup):
        sess.run(None, feeds)
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        ms.append((time.perf_counter() - t0) * 1e3)
    q = np.percentile(ms, [10, 90])
    return {
        "provider": sess.get_providers()[0],
        "median_ms": statistics.median(ms),
        "p10_ms": float(q[0]),
        "p90_ms": float(q[1]),
        "repeats": repeats,
        "threads": threads if threads is not None else "default",
    }


def time_interleaved(
    paths: dict[str, Path],
    image_size: int,
    *,
    provider: str = "cpu",
    threads: int | None = None,
    repeats: int = 20,
    warmup: int = 2,
) -> dict[str, dict[str, float | int | str]]:
    """Like :func:`time_graph` for several graphs, timed round-robin (one run of each per round).

    On a shared machine the load changes over minutes; interleaving exposes every graph to the same load,
    so their medians compare fairly even when absolute numbers drift.
    """
    sessions = {k: make_session(p, provider, threads) for k, p in paths.items()}
    feeds = {k: example_feeds(p, image_size) for k, p in paths.items()}
    ms: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(warmup + repeats):
        for k, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, feeds[k])
            if r >= warmup:
                ms[k].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for k, v in ms.items():
        q = np.percentile(v, [10, 90])
        out[k] = {
            "provider": sessions[k].get_providers()[0],
            "median_ms": statistics.median(v),
            "p10_ms": float(q[0]),
            "p90_ms": float(q[1]),
            "repeats": repeats,
            "threads": threads if threads is not None else "default",
            "interleaved": True,
        }
    return out


def environment() -> dict[str, str]:
    """Device and versions for reports."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = Path("/proc/cpuinfo").read_text()
        isa = [f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2") if f" {f}" in flags]
    except OSError:
        isa = []
    return {
        "cpu": cpu,
        "cpu_isa": ",".join(isa),
        "cpu_count": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "ort_providers": ",".join(ort.get_available_providers()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
