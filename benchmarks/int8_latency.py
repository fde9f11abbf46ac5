"""CPU EP latency of the int8 options for "int8 on every x86 CPU" (docs/BENCHMARKS.md).

Exports the tiny SAM 2 image encoder (seeded random init unless --checkpoint) as float, `w8a8`
(7-bit-magnitude GPTQ weights: right on every CPU), `w8a8_vnni` (full 8-bit weights: right on VNNI CPUs
only) and a u8 x u8 copy of the `w8a8_vnni` file (weights re-stored as uint8 with zero point 128: same
numbers, no saturation anywhere, another kernel), times them round-robin on onnxruntime's CPU EP and
writes results.json + results.md into a fresh folder under --out. Latency of the AVX2 kernels cannot be
measured on a VNNI host (qemu's speed means nothing): the table says which CPU it came from.

    python benchmarks/int8_latency.py --image-size 512 --threads 2 --repeats 15 --out runs/bench-int8
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.int8 import host_int8_path
from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.models import model_info
from sam2_quant_plugin.onnx.audit import optimized_op_histogram
from sam2_quant_plugin.onnx.timing import environment, time_interleaved
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.export import export_image_encoder

log = logging.getLogger("bench-int8")


def to_u8u8(src: Path, dst: Path) -> int:
    """Re-store each symmetric int8 weight initializer (zero point 0) as uint8 codes + 128, zero point 128."""
    proto = onnx.load(str(src))
    inits = {i.name: i for i in proto.graph.initializer}
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[0] not in inits:
            continue
        w, zp = inits[node.input[0]], inits.get(node.input[2])
        if w.data_type != onnx.TensorProto.INT8 or zp is None:
            continue
        codes, z = numpy_helper.to_array(w), numpy_helper.to_array(zp)
        if np.any(z != 0):
            continue
        w.CopyFrom(numpy_helper.from_array((codes.astype(np.int16) + 128).astype(np.uint8), w.name))
        zp.CopyFrom(numpy_helper.from_array(np.full(z.shape, 128, np.uint8), zp.name))
        changed += 1
    onnx.save(proto, str(dst))
    return changed


def fused_ops(path: Path, tmp: Path) -> dict[str, int]:
    ops = optimized_op_histogram(path, tmp)
    return {k: v for k, v in ops.items() if k in ("MatMulIntegerToFloat", "MatMul", "Gemm", "QLinearConv")}


def _ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = new_run_dir(args.out, "bench_int8")
    model = build_sam2_model("sam2.1_hiera_t", args.checkpoint, image_size=args.image_size)
    photos = [load_image(p) for p in bundled_images()]
    files = {"float": export_image_encoder(model, run / "float.onnx", image_size=args.image_size)}
    for recipe, target in (("w8a8", "any"), ("w8a8_vnni", "vnni")):
        q = prepare_qat(model, recipe)
        calibrate(q, photos, image_size=args.image_size, progress=False)
        files[recipe] = export_image_encoder(
            freeze(q), run / f"{recipe}.onnx", image_size=args.image_size, target_cpu=target
        )
    n = to_u8u8(files["w8a8_vnni"], run / "w8a8_vnni_u8u8.onnx")
    files["w8a8_vnni_u8u8"] = run / "w8a8_vnni_u8u8.onnx"
    log.info("u8u8 copy: %d weights re-stored as uint8", n)
    ops = {k: fused_ops(p, run / f"{k}.opt.onnx") for k, p in files.items()}
    times = time_interleaved(files, args.image_size, threads=args.threads, repeats=args.repeats)
    env = environment()
    host = host_int8_path()
    ms = {k: float(t["median_ms"]) for k, t in times.items()}
    rows = [{"variant": k, "median_ms": v, "vs_float": v / ms["float"], "ops": ops[k]} for k, v in ms.items()]
    result = {"environment": env, "host_int8_path": host.to_dict(), "weights": model_info(model).weights}
    result |= {"image_size": args.image_size, "threads": args.threads, "repeats": args.repeats, "rows": rows}
    lines = [
        f"# int8 options, CPU EP latency ({args.image_size} px, {args.threads} threads, "
        f"{args.repeats} repeats)",
        "",
        f"- {host.describe()}",
        f"- onnxruntime {env['onnxruntime']}; weights: {model_info(model).weights}",
        "",
        *md_table(
            ("variant", "median ms", "vs float", "fused ops"),
            [(k, f"{v:.1f}", f"{v / ms['float']:.2f}x", _ops(ops[k])) for k, v in ms.items()],
        ),
    ]
    write_results(run / "results.json", result, run / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 (a benchmark prints its figures)
    print(json.dumps({"results": str(run / "results.json")}))  # noqa: T201


if __name__ == "__main__":
    main()
