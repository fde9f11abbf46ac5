"""Fidelity and CPU EP latency of quantized attention MatMuls vs leaving them float (docs/ATTENTION.md).

Builds the tiny SAM 2 (SEEDED RANDOM INIT unless --checkpoint), prepares the shipped `w8a8` recipe with and
without an `attention:` section over the image encoder's MultiScaleAttention modules (`w8a8_attn`),
calibrates both on the bundled photos, exports the image encoder of each, and reports the encoder embedding
cosine of each ONNX file vs the float torch model (on --heldout photos when given, else in-sample on the
calibration photos, marked so) and their onnxruntime CPU EP latency, timed round-robin. Writes results.json
+ results.md into --out, which must not exist yet.

    python benchmarks/attention_matmul.py --image-size 512 --repeats 5 --heldout /tmp/heldout/photos \
        --out runs/attention_matmul_512
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import onnx

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.int8.host import cpu_flags
from sam2_quant_plugin.io.images import list_images
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.timing import environment, time_interleaved
from sam2_quant_plugin.recipe import load_recipe
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.export import export_image_encoder
from sam2_quant_plugin.sam2.parity import pipeline_parity

log = logging.getLogger("bench-attention")
INTEGER_MATMULS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger")


def fused_ops(path: Path, out: Path) -> dict[str, int]:
    """Integer MatMul node counts in onnxruntime's optimized graph (what the CPU EP runs)."""
    make_session(path, optimized_model_path=out)
    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    return {k: ops[k] for k in (*INTEGER_MATMULS, "MatMul", "Softmax")}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument(
        "--heldout", default=None, help="folder of photos to measure fidelity on (not calibrated)"
    )
    ap.add_argument("--out", required=True, help="results folder; must not exist yet")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)  # never overwrite a previous run
    cpu, flags = cpu_flags()
    host = f"CPU {cpu} [{flags or 'no int8 flags'}]"
    init = (
        "pretrained " + args.checkpoint if args.checkpoint else "SEEDED RANDOM INIT (seed 0), not pretrained"
    )
    log.warning("!!! weights: %s !!! %s", init, host)

    size = args.image_size
    model = build_sam2_model("sam2.1_hiera_t", args.checkpoint, image_size=size, seed=0)
    calib = [load_image(p) for p in bundled_images()]
    held = [load_image(p) for p in list_images(args.heldout)] if args.heldout else calib
    fidelity_on = (
        f"{len(held)} held-out photos" if args.heldout else f"{len(held)} IN-SAMPLE calibration photos"
    )
    files = {"float": export_image_encoder(model, out / "float.onnx", image_size=size)}
    for name in ("w8a8", "w8a8_attn"):
        q = prepare_qat(model, load_recipe(name))
        calibrate(q, calib, image_size=size, progress=False)
        files[name] = export_image_encoder(freeze(q), out / f"{name}.onnx", image_size=size, target_cpu="any")
    rows: list[dict[str, Any]] = []
    times = time_interleaved(files, size, threads=args.threads, repeats=args.repeats)
    for name, path in files.items():
        fid = pipeline_parity(model, path, None, held, image_size=size, threads=args.threads)
        ops = fused_ops(path, out / f"{name}.opt.onnx")
        rows.append({"graph": name, **times[name], "embed_cosine": fid["embed_cosine"], "ops": ops})
        log.info(
            "%-10s %8.1f ms  cosine %.5f  %s  %s",
            name,
            times[name]["median_ms"],
            fid["embed_cosine"],
            ops,
            host,
        )
    for name in files:
        (out / f"{name}.opt.onnx").unlink()
    result = {
        "weights": init,
        "image_size": size,
        "threads": args.threads,
        "repeats": args.repeats,
        "fidelity_on": fidelity_on,
        "cpu": cpu,
        "cpu_flags": flags,
        "environment": environment(),
        "rows": rows,
    }
    lines = [
        f"# Attention MatMuls quantized vs float: tiny SAM 2 image encoder, {size} px",
        "",
        f"**Weights: {init}.** Fidelity: encoder embedding cosine of each ONNX file (onnxruntime CPU EP) "
        f"vs the float torch model on {fidelity_on}. Latency: median of {args.repeats} round-robin runs, "
        f"{args.threads} threads, on {host}.",
        "",
        *md_table(
            [
                "graph",
                "median ms",
                "p10 ms",
                "p90 ms",
                "embed cosine",
                "integer MatMuls",
                "float MatMuls",
                "CPU",
            ],
            [
                [
                    r["graph"],
                    f"{r['median_ms']:.1f}",
                    f"{r['p10_ms']:.1f}",
                    f"{r['p90_ms']:.1f}",
                    f"{r['embed_cosine']:.5f}",
                    sum(r["ops"][k] for k in INTEGER_MATMULS),
                    r["ops"]["MatMul"],
                    f"{cpu} [{flags}]",
                ]
                for r in rows
            ],
        ),
        "",
        f"Command: `python benchmarks/attention_matmul.py --image-size {size} --threads {args.threads} "
        f"--repeats {args.repeats}{' --heldout ' + args.heldout if args.heldout else ''} --out OUT`",
        "",
        "Fused ops per graph: `" + json.dumps({r["graph"]: r["ops"] for r in rows}) + "`",
    ]
    write_results(out / "results.json", result, out / "results.md", "\n".join(lines) + "\n")
    log.info("wrote %s/results.md (%s)", out, host)


if __name__ == "__main__":
    main()
