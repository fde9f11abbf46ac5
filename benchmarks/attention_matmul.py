"""Fidelity and CPU EP latency of quantized attention MatMuls vs leaving them float (docs/ATTENTION.md).

Builds the tiny SAM 2 (SEEDED RANDOM INIT unless --checkpoint), prepares each of --recipes (default: the
shipped `w8a8`, attention float, and `w8a8_attn`, the same plus an `attention:` section), calibrates it on
the bundled photos, exports its image encoder and reports, per recipe: the encoder cosine vs the float torch
model of the ONNX file (onnxruntime CPU EP) and of the frozen fake-quant torch model, the cosine between the
two (export parity: a low one is an export bug, not quantization loss), and the CPU EP latency, timed
round-robin. --profile adds onnxruntime's kernel time per op for every graph, and for each recipe with an
`attention:` section also times the form export wrote before `onnx/attention_scale.py` (`NAME-scale-after`:
the softmax scale as a Mul over the scores, same codes), so the table shows what that pass buys.
Fidelity is on --heldout photos when given, else in-sample on the calibration photos (marked
so). --ablate adds, for every recipe with an `attention:` section, a per-module sensitivity table: the torch
fake-quant encoder cosine with only that one module's attention quantized (its rule's settings, every layer
float). Writes results.json + results.md into --out (atomically), which must not exist yet.

    python benchmarks/attention_matmul.py --image-size 512 --repeats 5 --heldout /tmp/heldout/photos \
        --recipes w8a8 w8a8_attn benchmarks/recipes/w8a8_attn_fixed.yaml --ablate --profile \
        --out runs/attention_512
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.cpu import this_cpu
from sam2_quant_plugin.eval.metrics import cosine
from sam2_quant_plugin.io.images import list_images
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.onnx.audit import optimized_op_histogram
from sam2_quant_plugin.onnx.graph import Graph
from sam2_quant_plugin.onnx.timing import environment, profile_kernels, time_interleaved
from sam2_quant_plugin.recipe import Recipe, load_recipe
from sam2_quant_plugin.recipe.attention_resolve import resolve_attention
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.export import export_image_encoder
from sam2_quant_plugin.sam2.forward import encode
from sam2_quant_plugin.sam2.parity import pipeline_parity
from sam2_quant_plugin.sam2.preprocess import to_model_input

log = logging.getLogger("bench-attention")
INTEGER_MATMULS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger")
#: The ops quantized attention changes (docs/ATTENTION.md), columns of --profile's table.
PROFILE_OPS = (*INTEGER_MATMULS[:2], "MatMul", "FusedMatMul", "Transpose", "QuantizeLinear", "Mul", "MaxPool")


def fused_ops(path: Path, out: Path) -> dict[str, int]:
    """Integer MatMul node counts in onnxruntime's optimized graph (what the CPU EP runs)."""
    ops = optimized_op_histogram(path, out)
    return {k: ops.get(k, 0) for k in (*INTEGER_MATMULS, "MatMul", "Softmax")}


def scale_after(src: Path, dst: Path) -> int:
    """Write ``src`` as export wrote it before ``onnx/attention_scale.py``: each ``.../SoftmaxScale`` Mul
    on q removed, q's quantizer back at its own scale and the factor as a Mul after the q.k^T MatMul (same
    codes, same products). Returns the number of attention products rewritten."""
    proto = onnx.load(str(src))
    g = Graph(proto)
    done = 0
    for pre in [n for n in proto.graph.node if n.name.endswith("/SoftmaxScale")]:
        factor = g.const(pre.input[1])
        quant = g.consumers(pre.output[0])[0]
        dq = next(
            n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[1] == quant.input[1]
        )
        matmul = g.consumers(dq.output[0])[0]
        if factor is None or quant.op_type != "QuantizeLinear" or matmul.op_type != "MatMul":
            raise ValueError(f"{pre.name}: not the form onnx/attention_scale.py writes")
        scale = g.const(quant.input[1])
        assert scale is not None
        own = numpy_helper.from_array((scale / factor).astype(np.float32), f"{quant.input[1]}.unscaled")
        g.set_initializer(own)
        quant.input[0], quant.input[1], dq.input[1] = pre.input[0], own.name, own.name
        product, scaled = f"{matmul.output[0]}.unscaled", matmul.output[0]
        matmul.output[0] = product
        mul = helper.make_node("Mul", [product, pre.input[1]], [scaled], f"{matmul.name}/Mul_scale")
        proto.graph.node.insert(list(proto.graph.node).index(matmul) + 1, mul)
        proto.graph.node.remove(pre)
        done += 1
    g.remove_dead()
    onnx.save(proto, str(dst))
    return done


def torch_cosine(ref: nn.Module, model: nn.Module, images: Sequence[np.ndarray], size: int) -> float:
    """Worst encoder cosine (over images and the 3 outputs) of ``model`` vs ``ref``, as pipeline_parity."""
    worst = 1.0
    with torch.no_grad():
        for img in images:
            x = to_model_input([img], size)
            a, b = encode(ref.eval(), x), encode(model.eval(), x)
            pairs = zip([a["image_embed"], *a["high_res_feats"]], [b["image_embed"], *b["high_res_feats"]])
            worst = min([worst, *(cosine(u, v) for u, v in pairs)])
    return worst


def quantized(model: nn.Module, recipe: Recipe, calib: list[np.ndarray], size: int) -> nn.Module:
    q = prepare_qat(model, recipe)
    calibrate(q, calib, image_size=size, progress=False)
    return freeze(q)


def ablation(
    model: nn.Module, recipe: Recipe, calib: list[np.ndarray], held: list[np.ndarray], size: int
) -> list[dict[str, Any]]:
    """Per attention module of ``recipe``: the torch fake-quant cosine with only its attention quantized."""
    plans = resolve_attention(model, recipe)
    keys = keys_per_row(model, size)
    rows: list[dict[str, Any]] = []
    for name, plan in plans.items():
        if plan.spec is None:
            continue
        rule = next(
            r
            for r in recipe.attention
            if r.match == name or (r.kind != "exact" and r.match == plan.matched_by)
        )
        only = Recipe(
            name=f"{recipe.name}:{name}",
            targets=recipe.targets,
            attention=(dataclasses.replace(rule, match=name),),
        )
        cos = torch_cosine(model, quantized(model, only, calib, size), held, size)
        tokens = keys.get(name, "?")
        rows.append({"module": name, "tokens": tokens, "probs": rule.probs, "torch_cosine": cos})
        log.info("ablate %-40s %s tokens=%s cosine %.5f", recipe.name, name, tokens, cos)
    return rows


def keys_per_row(model: nn.Module, size: int) -> dict[str, int]:
    """Keys each attention row sees, per attention module: the tokens of its (windowed) input map."""
    seen: dict[str, int] = {}

    def note(name: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:  # None: the input is left as it is
            seen.setdefault(name, int(args[0].shape[1] * args[0].shape[2]))

        return hook

    hooks = [
        m.register_forward_pre_hook(note(n))
        for n, m in model.named_modules()
        if type(m).__name__ == "MultiScaleAttention"
    ]
    try:
        with torch.no_grad():
            encode(model.eval(), torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument(
        "--heldout", default=None, help="folder of photos to measure fidelity on (not calibrated)"
    )
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=["w8a8", "w8a8_attn"],
        help="shipped recipe names or YAML paths, one graph each (their names must differ)",
    )
    ap.add_argument(
        "--ablate",
        action="store_true",
        help="per-module sensitivity of each recipe with an attention section (torch fake-quant cosine)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="kernel time per op (onnxruntime's profiler), plus each attention recipe's scale-after form",
    )
    ap.add_argument("--out", required=True, help="results folder; must not exist yet")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipes = [load_recipe(r) for r in args.recipes]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names) or "float" in names:
        ap.error(f"--recipes need distinct names other than 'float', got {names}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)  # never overwrite a previous run
    cpu_info = this_cpu()
    cpu, flags = cpu_info.label, cpu_info.int8_flags
    host = f"CPU {cpu}, int8 flags {flags or 'none'}"
    init = (
        "pretrained " + args.checkpoint if args.checkpoint else "SEEDED RANDOM INIT (seed 0), not pretrained"
    )
    log.warning("!!! weights: %s !!! %s", init, host)

    size = args.image_size
    model = build_sam2_model("sam2.1_hiera_t", args.checkpoint, image_size=size, seed=0).eval()
    calib = [load_image(p) for p in bundled_images()]
    held = [load_image(p) for p in list_images(args.heldout)] if args.heldout else calib
    fidelity_on = (
        f"{len(held)} held-out photos" if args.heldout else f"{len(held)} IN-SAMPLE calibration photos"
    )
    files = {"float": export_image_encoder(model, out / "float.onnx", image_size=size)}
    frozen: dict[str, nn.Module] = {"float": model}
    for recipe in recipes:
        frozen[recipe.name] = quantized(model, recipe, calib, size)
        files[recipe.name] = export_image_encoder(
            frozen[recipe.name], out / f"{recipe.name}.onnx", image_size=size, target_cpu="any"
        )
    timed = dict(files)
    if args.profile:  # the form before onnx/attention_scale.py, for each recipe that quantizes attention
        for recipe in recipes:
            before = out / f"{recipe.name}-scale-after.onnx"
            if recipe.attention and scale_after(files[recipe.name], before):
                timed[before.stem] = before
    rows: list[dict[str, Any]] = []
    times = time_interleaved(timed, size, threads=args.threads, repeats=args.repeats)
    kernels = profile_kernels(timed, size, threads=args.threads, repeats=args.repeats) if args.profile else {}
    for name, path in files.items():
        fid = pipeline_parity(model, path, None, held, image_size=size, threads=args.threads)
        par = pipeline_parity(frozen[name], path, None, held, image_size=size, threads=args.threads)
        tcos = torch_cosine(model, frozen[name], held, size)
        ops = fused_ops(path, out / f"{name}.opt.onnx")
        rows.append(
            {
                "graph": name,
                **times[name],
                "embed_cosine": fid["embed_cosine"],
                "torch_fq_cosine": tcos,
                "ort_vs_torch_fq_cosine": par["embed_cosine"],
                "ops": ops,
            }
        )
        log.info(
            "%-16s %8.1f ms  ORT cosine %.5f  torch fq cosine %.5f  ORT vs fq %.5f  %s  %s",
            name,
            times[name]["median_ms"],
            fid["embed_cosine"],
            tcos,
            par["embed_cosine"],
            ops,
            host,
        )
    for name in files:
        (out / f"{name}.opt.onnx").unlink()
    ablations = {
        r.name: ablation(model, r, calib, held, size) for r in recipes if args.ablate and r.attention
    }
    result = {
        "weights": init,
        "image_size": size,
        "threads": args.threads,
        "repeats": args.repeats,
        "recipes": args.recipes,
        "fidelity_on": fidelity_on,
        "cpu": cpu,
        "cpu_flags": flags,
        "environment": environment(),
        "rows": rows,
        "ablation": ablations,
        "profile_ms": kernels,
        "wall_ms": {k: times[k] for k in kernels},
    }
    lines = [
        f"# Attention MatMuls quantized vs float: tiny SAM 2 image encoder, {size} px",
        "",
        f"**Weights: {init}.** Fidelity: worst encoder cosine (over images and the three encoder outputs) vs "
        f"the float torch model on {fidelity_on}, of each ONNX file (onnxruntime CPU EP) and of the frozen "
        "fake-quant torch model; `ORT vs fq` compares the two (export parity). Latency: median of "
        f"{args.repeats} round-robin runs, {args.threads} threads, on {host}.",
        "",
        *md_table(
            [
                "graph",
                "median ms",
                "p10 ms",
                "p90 ms",
                "ORT cosine",
                "torch fq cosine",
                "ORT vs fq",
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
                    f"{r['torch_fq_cosine']:.5f}",
                    f"{r['ort_vs_torch_fq_cosine']:.5f}",
                    sum(r["ops"][k] for k in INTEGER_MATMULS),
                    r["ops"]["MatMul"],
                    f"{cpu}, int8 flags {flags}",
                ]
                for r in rows
            ],
        ),
    ]
    if kernels:
        lines += [
            "",
            f"Kernel time per run by op (onnxruntime's profiler, {args.repeats} round-robin runs + 2 "
            f"warm-up, {args.threads} threads, {host}); `-scale-after`: the same file as export wrote "
            "it before `onnx/attention_scale.py` (softmax scale as a Mul over the scores, same codes).",
            "",
            *md_table(
                ["graph", "wall median ms", "all kernels ms", *PROFILE_OPS],
                [
                    [
                        k,
                        f"{times[k]['median_ms']:.1f}",
                        f"{sum(ops.values()):.1f}",
                        *(f"{ops.get(o, 0.0):.1f}" for o in PROFILE_OPS),
                    ]
                    for k, ops in kernels.items()
                ],
            ),
        ]
    for rname, arows in ablations.items():
        lines += [
            "",
            f"Per-module sensitivity of `{rname}`: torch fake-quant cosine with only that module's attention "
            f"quantized (every layer float), {fidelity_on}, on {host}.",
            "",
            *md_table(
                ["module", "keys per row", "probs", "torch fq cosine"],
                [[a["module"], a["tokens"], a["probs"], f"{a['torch_cosine']:.5f}"] for a in arows],
            ),
        ]
    lines += [
        "",
        f"Command: `python benchmarks/attention_matmul.py --image-size {size} --threads {args.threads} "
        f"--repeats {args.repeats}{' --heldout ' + args.heldout if args.heldout else ''} "
        f"--recipes {' '.join(args.recipes)}{' --ablate' if args.ablate else ''}"
        f"{' --profile' if args.profile else ''} --out OUT`",
        "",
        "Fused ops per graph: `" + json.dumps({r["graph"]: r["ops"] for r in rows}) + "`",
    ]
    write_results(out / "results.json", result, out / "results.md", "\n".join(lines) + "\n")
    log.info("wrote %s/results.md (%s)", out, host)


if __name__ == "__main__":
    main()
