"""The results table: ``results.json``, ``results.md`` and a size-vs-IoU scatter plot, in one run folder."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..io.atomic import atomic_write
from ..io.report import md_table, write_results

log = logging.getLogger(__name__)

COLUMNS = (
    "method",
    "avg W bits",
    "A bits",
    "file size (MiB)",
    "CPU EP latency vs float",
    "CUDA EP latency vs float",
    "mask IoU points",
    "mask IoU boxes",
    "mask IoU video (J)",
    "embed cosine",
)


def _num(v: object, fmt: str) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return format(v, fmt)


def decoder_note(rows: list[dict]) -> str:
    """Which mask decoder each row's masks came from (rows without a ``decoder`` entry: float)."""
    own = {k: [r["method"] for r in rows if r.get("decoder") == k] for k in ("quantized", "onnxruntime")}
    if not any(own.values()):
        return "Decoder: torch float for every method (no method here quantizes it)."
    parts = []
    if own["quantized"]:
        parts.append(f"its own quantized torch decoder for {', '.join(own['quantized'])}")
    if own["onnxruntime"]:
        parts.append(f"the exported decoder file on onnxruntime for {', '.join(own['onnxruntime'])}")
    return f"Decoder: torch float, except {'; '.join(parts)} (images, and video where scored)."


def table_rows(rows: list[dict]) -> list[list[str]]:
    """The table's cells, one list per method, in :data:`COLUMNS` order."""
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["method"]] + ["error"] * (len(COLUMNS) - 1))
            continue
        size = f"{r['size_mib']:.1f}" + (" (est.)" if r.get("size_kind") == "packed estimate" else "")
        cpu = r.get("cpu_latency_vs_float")
        out.append(
            [
                r["method"],
                _num(r.get("avg_w_bits"), ".2f"),
                str(r["a_bits"]) if r.get("a_bits") else "float",
                size,
                _num(cpu, ".2f") + ("x" if isinstance(cpu, float) else ""),
                _num(r.get("cuda_latency_vs_float"), ".2f"),
                _num(r["points"]["mask_iou"], ".4f"),
                _num(r["boxes"]["mask_iou"], ".4f"),
                _num(r.get("video", {}).get("j_mean"), ".4f"),
                _num(r.get("embed_cosine"), ".5f"),
            ]
        )
    return out


def _calibration_line(results: dict) -> str:
    calib = results.get("calibration_images")
    if calib is None:  # results written before calibration and scoring were separated
        return "- calibration: the scored images (**in-sample**)"
    names = ", ".join(Path(p).name for p in calib)
    if results.get("in_sample"):
        return (
            f"- calibration ({len(calib)}): {names}: **IN-SAMPLE** for data-aware rows "
            f"({len(results.get('in_sample_images', []))} scored image(s) were also calibrated on)"
        )
    return f"- calibration ({len(calib)}): {names} (held out: no scored image was calibrated on)"


def _video_calibration_line(results: dict) -> str:
    clip = results.get("calibration_video", "bundled clip (memory-path rows)")
    held = "**IN-SAMPLE**: scored frames were calibrated on" if results.get("video_in_sample") else "held out"
    return f"- clip the memory-path rows calibrate on: {clip} ({held})"


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [
        f"# sam2-quant eval: {results['config']} at {results['image_size']} px",
        "",
        f"**Weights: {results['weights']}**",
        "",
        f"- images scored ({len(results['images'])}): {', '.join(Path(p).name for p in results['images'])}",
        _calibration_line(results),
        f"- video: {results.get('video', {}).get('video', 'not run')}",
        _video_calibration_line(results),
        f"- point prompts: {results['prompts']['point_prompts']}",
        f"- box prompts per image: {results['prompts']['box_prompts']}",
        f"- image size {results['image_size']} px"
        + (
            " (CLI default 512 on CPU; pass --image-size 1024 for SAM 2's native size)"
            if results["image_size"] != 1024
            else ""
        ),
        f"- seed {results['seed']}; host: {results['host']}",
        "",
        *md_table(COLUMNS, table_rows(rows)),
    ]
    lines += [
        "",
        "Mask IoU is against the float teacher's masks on the same prompts; degenerate (empty or full)",
        "teacher masks are excluded (share per method in results.json). " + decoder_note(rows),
        "File size: the image encoder ONNX file for onnxruntime rows;",
        "for torch rows a packed estimate (quantized weights at their bits, other tensors float32).",
        "Latency: image encoder, median of repeats, vs the float encoder in the same runtime (torch rows:",
        "converted int8 torch model vs torch float; onnxruntime rows: CPU EP vs the float ONNX).",
        results["timing_note"],
        "",
    ]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["## Failed methods", ""] + [f"- {r['method']}: {r['error']}" for r in errors] + [""]
    lines += ["## Methods", ""] + [f"- **{r['method']}**: {r['description']}" for r in rows] + [""]
    lines += [f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    """Scatter of encoder size (MiB) vs point-prompt mask IoU, one labelled point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    for k, r in enumerate(results["rows"], 1):  # numbered points, names in the legend: labels never overlap
        if "error" in r or math.isnan(r["points"]["mask_iou"]):
            continue
        x, y = r["size_mib"], r["points"]["mask_iou"]
        marker = "o" if r.get("runtime") == "torch" else "s"
        ax.scatter(x, y, marker=marker, label=f"{k}. {r['method']}")
        ax.annotate(str(k), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="o torch  \u25a1 onnxruntime")
    ax.set_xscale("log")
    ax.set_xlabel("image encoder size (MiB; torch rows: packed estimate)")
    ax.set_ylabel("mask IoU vs float teacher (point prompts)")
    ax.set_title(
        f"{results['config']} @ {results['image_size']} px; weights: {results['weights'][:60]}", fontsize=9
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    return path


def write_report(results: dict, run_dir: Path) -> dict[str, Path]:
    """Write results.json, results.md and size_vs_iou.png into ``run_dir``; returns their paths."""
    paths = write_results(run_dir / "results.json", results, run_dir / "results.md", markdown(results))
    try:
        paths["png"] = plot(results, run_dir / "size_vs_iou.png")
    except Exception as exc:
        log.error("plot failed: %s", exc)
    return paths
