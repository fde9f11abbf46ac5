"""Run every method through the same harness: build its student, score images (and video), time it."""

from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import Sequence

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from ..api import is_prepared
from ..timer import median_seconds, paired
from .baselines.base import BuildContext, BuiltStudent, Method
from .harness import Reference, decoder_kind, score_student
from .latency import NO_CUDA, cuda_available, ort_runner, torch_encoder_runner
from .video import VideoReference, score_video

log = logging.getLogger(__name__)


class _Timer:
    """Encoder latency of a student vs the float encoder in the same runtime, runs interleaved."""

    def __init__(self, ctx: BuildContext, ref: Reference, repeats: int) -> None:
        self.ctx, self.x, self.repeats = ctx, ref.images[0].x, repeats

    def _ort(self, built: BuiltStudent, provider: str) -> tuple[float, float]:
        opt = built.ort_optimize  # the float reference runs at the same optimisation level
        return paired(
            ort_runner(self.ctx.float_onnx, self.x, provider, optimize=opt),
            ort_runner(built.onnx_path, self.x, provider, optimize=opt),
            repeats=self.repeats,
        )

    def measure(self, built: BuiltStudent) -> dict:
        if built.runtime == "onnxruntime" and built.onnx_path is not None:
            secs, ratio = self._ort(built, "cpu")
            level = "default optimisations" if built.ort_optimize else "ORT_DISABLE_ALL, float also"
            out = {"cpu_latency_runtime": f"onnxruntime CPU EP ({level})"}
            out.update(cpu_latency_ms=secs * 1e3, cpu_latency_vs_float=ratio, cuda_latency_vs_float=NO_CUDA)
            if cuda_available():
                out["cuda_latency_vs_float"] = self._ort(built, "cuda")[1]
            return out
        model, label = _torch_runtime_model(built.model)
        float_run = torch_encoder_runner(self.ctx.teacher, self.x)
        if model is self.ctx.teacher:  # the float row: exactly 1.0 by definition
            secs, ratio = median_seconds(float_run, repeats=self.repeats), 1.0
        else:
            secs, ratio = paired(float_run, torch_encoder_runner(model, self.x), repeats=self.repeats)
        out = {"cpu_latency_runtime": label, "cpu_latency_ms": secs * 1e3, "cpu_latency_vs_float": ratio}
        out["cuda_latency_vs_float"] = "n/a (torch row)"
        return out


def _torch_runtime_model(model: nn.Module) -> tuple[nn.Module, str]:
    """The torch int8 model (``convert``) to time a prepared model, else the model itself."""
    if not is_prepared(model):
        return model, "torch CPU float"
    try:
        from ..convert import convert

        return convert(model), "torch CPU int8 (convert)"
    except Exception as exc:
        log.warning("convert failed (%s); timing the fake-quant model", exc)
        return model, "torch CPU fake-quant (convert failed)"


def run_methods(
    ctx: BuildContext,
    methods: Sequence[Method],
    ref: Reference,
    video_ref: VideoReference | None = None,
    *,
    time_repeats: int = 3,
    timing: bool = True,
) -> list[dict]:
    """One result row per method; a failing method gives a row with ``error`` instead of stopping the run."""
    timer = _Timer(ctx, ref, time_repeats)
    rows = []
    for method in tqdm(methods, desc="methods", leave=False):
        row: dict = {"method": method.name, "description": method.description}
        t0 = time.perf_counter()
        try:
            built = method.make_student(ctx)
            row.update(
                runtime=built.runtime,
                avg_w_bits=built.avg_w_bits,
                a_bits=built.a_bits,
                size_mib=built.size_bytes / 2**20,
                size_kind=built.size_kind,
                notes=built.notes,
                onnx_path=str(built.onnx_path) if built.onnx_path else None,
                decoder=decoder_kind(built.model),
            )
            row.update(score_student(ref, built.model, ctx.teacher, name=method.name))
            if video_ref is not None and hasattr(built.model, "forward_image"):
                row["video"] = score_video(video_ref, ctx.teacher, built.model)
            if timing and built.timed:
                row.update(timer.measure(built))
        except Exception as exc:
            log.error("%s failed: %s", method.name, exc)
            row["error"] = f"{type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=6)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        log.info(
            "%s: points IoU %s, boxes IoU %s (%.0f s)",
            method.name,
            _fmt(row.get("points", {}).get("mask_iou")),
            _fmt(row.get("boxes", {}).get("mask_iou")),
            row["seconds"],
        )
        rows.append(row)
        built = None
        gc.collect()
    return rows


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"
