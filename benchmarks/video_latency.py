"""Per-frame CPU EP cost of SAM 2's video loop as deployed: each recipe's bundle, graph by graph.

For the float model and each recipe (default: `w8a8_video`, `w8a8_video_attn`), exports a bundle with the
video graphs (`export_bundle(..., graphs=VIDEO_GRAPHS)`: memory attention, memory encoder and the video
loop's mask decoder; recipes calibrated on the bundled photos and clip), times every graph of every bundle
round-robin on onnxruntime's CPU EP at the video loop's steady state (7 memory frames, 64 object-pointer
tokens, no new prompt: `onnx.timing.example_feeds`), and sums one tracked frame: encoder + memory
attention + memory encoder + mask decoder (one object; SAM 2's prompt encoder and small torch heads are not
counted). Also lists the fused ops of each memory-attention graph. Writes results.json + results.md into a
fresh folder under --out. Fidelity is eval's job (`sam2-quant eval --methods float,ours-w8a8-video-ort,...
--recipe NAME=PATH`, whose `-ort` rows run these files in the video loop).

    python benchmarks/video_latency.py --image-size 512 --threads 2 --repeats 10 --out runs/bench-video
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.int8 import host_int8_path
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.onnx.audit import optimized_op_histogram
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.onnx.timing import (
    STEADY_MEMORY_FRAMES,
    STEADY_OBJ_PTR_TOKENS,
    environment,
    time_interleaved,
)
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.export import VIDEO_GRAPHS

log = logging.getLogger("bench-video")
FRAME = ("encoder", "memory_attention", "memory_encoder", "sam_mask_decoder")  # one tracked frame, one object
OPS = ("MatMulIntegerToFloat", "QLinearMatMul", "Gemm", "MatMul", "FusedMatMul", "Transpose")


def _bundles(run: Path, recipes: list[str], image_size: int, checkpoint: str | None) -> dict[str, dict]:
    model = build_sam2_model("sam2.1_hiera_t", checkpoint, image_size=image_size)
    photos = [load_image(p) for p in bundled_images()]
    out = {}
    for name in ["float", *recipes]:
        m = model
        if name != "float":
            q = prepare_qat(model, name)
            calibrate(q, photos, image_size=image_size, progress=False)  # + the bundled clip (memory layers)
            m = freeze(q)
        folder = run / Path(name).stem
        manifest = export_bundle(m, folder, image_size=image_size, graphs=VIDEO_GRAPHS)
        files = manifest["files"]
        assert isinstance(files, dict)
        out[Path(name).stem] = {k: folder / v for k, v in files.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--recipes", nargs="+", default=["w8a8_video", "w8a8_video_attn"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = new_run_dir(args.out, "bench_video")
    bundles = _bundles(run, args.recipes, args.image_size, args.checkpoint)
    paths = {f"{b}/{g}": p for b, files in bundles.items() for g, p in files.items()}
    times = time_interleaved(paths, args.image_size, threads=args.threads, repeats=args.repeats)
    ms = {k: float(t["median_ms"]) for k, t in times.items()}
    frame = {b: sum(ms[f"{b}/{g}"] for g in FRAME) for b in bundles}
    ops = {
        b: optimized_op_histogram(files["memory_attention"], run / f"{b}_memory_attention.opt.onnx")
        for b, files in bundles.items()
    }
    env, host = environment(), host_int8_path()
    weights = "RANDOM INIT (seed 0)" if args.checkpoint is None else args.checkpoint
    rows = [
        [b, *(f"{ms[f'{b}/{g}']:.1f}" for g in FRAME), f"{frame[b]:.1f}", f"{frame[b] / frame['float']:.2f}x"]
        for b in bundles
    ]
    size_rows = [[b, *(f"{fs[g].stat().st_size / 1e6:.1f}" for g in FRAME)] for b, fs in bundles.items()]
    op_rows = [[b, ", ".join(f"{o} {ops[b].get(o, 0)}" for o in OPS)] for b in bundles]
    lines = [
        f"# SAM 2 video loop, per-frame CPU EP cost ({args.image_size} px, {args.threads} threads, "
        f"{args.repeats} repeats)",
        "",
        f"- {host.describe()}",
        f"- onnxruntime {env['onnxruntime']}; weights: {weights}",
        f"- memory attention at the loop's steady state: {STEADY_MEMORY_FRAMES} memory frames, "
        f"{STEADY_OBJ_PTR_TOKENS} object-pointer tokens; a frame = one run of each graph (one object)",
        "",
        "median ms:",
        "",
        *md_table(("bundle", *FRAME, "frame", "vs float"), rows),
        "",
        "file MB:",
        "",
        *md_table(("bundle", *FRAME), size_rows),
        "",
        "memory attention, ops onnxruntime runs:",
        "",
        *md_table(("bundle", "ops"), op_rows),
    ]
    result = {
        "environment": env,
        "host_int8_path": host.to_dict(),
        "weights": weights,
        "image_size": args.image_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "median_ms": ms,
        "frame_ms": frame,
        "bytes": {b: {g: p.stat().st_size for g, p in files.items()} for b, files in bundles.items()},
        "memory_attention_ops": ops,
        "config": "sam2.1_hiera_t",
    }
    write_results(run / "results.json", result, run / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 (a benchmark prints its figures)
    print(json.dumps({"results": str(run / "results.json")}))  # noqa: T201


if __name__ == "__main__":
    main()
