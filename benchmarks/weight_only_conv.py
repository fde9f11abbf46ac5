"""Weight-only convolutions on onnxruntime's CPU EP: the `Cast -> Mul` form export writes vs DequantizeLinear.

Exports the encoder and memory-encoder graphs of one recipe (default `w8a8_video`, calibrated on the bundled
photos and clip), derives from each file the form export wrote before `onnx/load_fold.py` (every weight-only
conv weight as `int8 codes -> DequantizeLinear`, same codes and scales), and profiles both with onnxruntime's
profiler, interleaved: time per run in the conv-related kernels (Conv, FusedConv, DequantizeLinear, the
NCHWc reorders) and in all kernels, plus wall-clock medians. Writes results.json + results.md into a fresh
folder under --out.

    python benchmarks/weight_only_conv.py --image-size 512 --threads 2 --repeats 40 --out runs/bench-conv
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.onnx.graph import Graph
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.onnx.timing import cpu_label, environment, profile_kernels, time_interleaved
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image

log = logging.getLogger("bench-conv")
GRAPHS = ("encoder", "memory_encoder")
CONV_OPS = ("Conv", "FusedConv", "DequantizeLinear", "ReorderInput", "ReorderOutput")


def as_dequantize(src: Path, dst: Path) -> int:
    """Write ``src`` with every ``codes -> Cast -> Mul(scale) -> conv`` back as ``codes -> DequantizeLinear``
    (symmetric codes: load_fold writes a Sub only for a nonzero zero point); returns the weights rewritten."""
    proto = onnx.load(str(src))
    g = Graph(proto)
    n = 0
    for cast in [
        c for c in proto.graph.node if c.op_type == "Cast" and g.initializer(c.input[0]) is not None
    ]:
        users = g.consumers(cast.output[0])
        if len(users) != 1 or users[0].op_type != "Mul":
            continue
        mul = users[0]
        scale = g.const(mul.input[1])
        codes = g.initializer(cast.input[0])
        if scale is None or codes is None or codes.data_type != onnx.TensorProto.INT8:
            continue
        per_channel = scale.size > 1
        s = numpy_helper.from_array(scale.reshape(-1).astype(np.float32), f"{mul.input[1]}_dq")
        z = numpy_helper.from_array(np.zeros(scale.size, np.int8), f"{cast.input[0]}_zp_dq")
        g.set_initializer(s)
        g.set_initializer(z)
        axis = int(np.argmax(scale.shape)) if per_channel else 1  # ignored for a per-tensor scale
        dq = helper.make_node("DequantizeLinear", [cast.input[0], s.name, z.name], [mul.output[0]], axis=axis)
        at = list(proto.graph.node).index(cast)
        proto.graph.node.remove(mul)
        proto.graph.node.remove(cast)
        proto.graph.node.insert(at, dq)
        n += 1
    g.remove_dead()
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dst))
    return n


def profile(
    paths: dict[str, Path], image_size: int, threads: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Conv-related and all kernel milliseconds per run (:func:`profile_kernels`), the graphs run
    round-robin."""
    out = {}
    for key, by_op in profile_kernels(paths, image_size, threads=threads, repeats=repeats).items():
        out[key] = {
            "all_kernels_ms": sum(by_op.values()),
            "conv_kernels_ms": sum(by_op.get(o, 0.0) for o in CONV_OPS),
            **{f"{o}_ms": by_op.get(o, 0.0) for o in CONV_OPS},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--recipe", default="w8a8_video")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--out", default="runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = new_run_dir(args.out, "bench_weight_only_conv")
    model = build_sam2_model("sam2.1_hiera_t", None, image_size=args.image_size)
    q = prepare_qat(model, args.recipe)
    calibrate(q, [load_image(p) for p in bundled_images()], image_size=args.image_size, progress=False)
    manifest = export_bundle(freeze(q), run / "bundle", image_size=args.image_size)
    listed = manifest["files"]
    assert isinstance(listed, dict)
    files = {g: run / "bundle" / str(listed[g]) for g in GRAPHS if g in listed}
    paths, rewritten = {}, {}
    for g, path in files.items():
        paths[f"{g}/cast_mul"] = path
        paths[f"{g}/dequantize"] = run / f"{g}_dequantize.onnx"
        rewritten[g] = as_dequantize(path, paths[f"{g}/dequantize"])
    prof = profile(paths, args.image_size, args.threads, args.repeats)
    wall = time_interleaved(paths, args.image_size, threads=args.threads, repeats=args.repeats)
    env = environment()
    rows = [
        [
            k,
            f"{p['conv_kernels_ms']:.1f}",
            f"{p['all_kernels_ms']:.1f}",
            f"{float(wall[k]['median_ms']):.1f}",
            f"{paths[k].stat().st_size / 1e6:.2f}",
        ]
        for k, p in prof.items()
    ]
    lines = [
        f"# Weight-only convs: Cast -> Mul (folded at load) vs DequantizeLinear ({args.image_size} px, "
        f"{args.threads} threads, {args.repeats} interleaved runs)",
        "",
        f"- CPU: {cpu_label(env)}; onnxruntime {env['onnxruntime']}; recipe {args.recipe}",
        "- weights: RANDOM INIT (seed 0): latency depends on shapes, not values",
        f"- weight-only conv weights per graph: {rewritten}",
        "",
        *md_table(("graph/form", "conv kernels ms", "all kernels ms", "wall median ms", "file MB"), rows),
    ]
    result = {
        "environment": env,
        "image_size": args.image_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "recipe": args.recipe,
        "profile_ms": prof,
        "wall": wall,
        "rewritten": rewritten,
        "bytes": {k: p.stat().st_size for k, p in paths.items()},
    }
    write_results(run / "results.json", result, run / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 (a benchmark prints its figures)
    print(json.dumps({"results": str(run / "results.json")}))  # noqa: T201


if __name__ == "__main__":
    main()
