"""Fidelity and CPU EP latency of quantized attention MatMuls vs leaving them float (docs/ATTENTION.md).

Builds the tiny SAM 2 (SEEDED RANDOM INIT unless --checkpoint), prepares each of --recipes (default: the
shipped `w8a8`, attention float, and `w8a8_attn`, the same plus an `attention:` section), calibrates it on
the bundled photos, exports its image encoder and reports, per recipe: the encoder cosine vs the float torch
model of the ONNX file (onnxruntime CPU EP) and of the frozen fake-quant torch model, the cosine between the
two (export parity: a low one is an export bug, not quantization loss), and the CPU EP latency, timed
round-robin. Fidelity is on --heldout photos when given, else in-sample on the calibration photos (marked
so). --ablate adds, for every recipe with an `attention:` section, a per-module sensitivity table: the torch
fake-quant encoder cosine with only that one module's attention quantized (its rule's settings, every layer
float). Writes results.json + results.md into --out (atomically), which must not exist yet.

    python benchmarks/attention_matmul.py --image-size 512 --repeats 5 --heldout /tmp/heldout/photos \
        --recipes w8a8 w8a8_attn benchmarks/recipes/w8a8_attn_fixed.yaml --ablate --out runs/attention_512
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
import torch
from torch import nn

from sam2_quant_plugin import calibrate, freeze, prepare_qat
from sam2_quant_plugin.eval.metrics import cosine
from sam2_quant_plugin.int8.host import cpu_flags
from sam2_quant_plugin.io.images import list_images
from sam2_quant_plugin.io.report import md_table, write_results
from sam2_quant_plugin.onnx.audit import optimized_op_histogram
from sam2_quant_plugin.onnx.timing import environment, time_interleaved
from sam2_quant_plugin.recipe import Recipe, load_recipe
from sam2_quant_plugin.recipe.attention_resolve import resolve_attention
from sam2_quant_plugin.sam2 import build_sam2_model, bundled_images, load_image
from sam2_quant_plugin.sam2.export import export_image_encoder
from sam2_quant_plugin.sam2.forward import encode
from sam2_quant_plugin.sam2.parity import pipeline_parity
from sam2_quant_plugin.sam2.preprocess import to_model_input

log = logging.getLogger("bench-attention")
INTEGER_MATMULS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger")


def fused_ops(path: Path, out: Path) -> dict[str, int]:
    """Integer MatMul node counts in onnxruntime's optimized graph (what the CPU EP runs)."""
    ops = optimized_op_histogram(path, out)
    return {k: ops.get(k, 0) for k in (*INTEGER_MATMULS, "MatMul", "Softmax")}


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
    ap.add_argument("--out", required=True, help="results folder; must not exist yet")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipes = [load_recipe(r) for r in args.recipes]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names) or "float" in names:
        ap.error(f"--recipes need distinct names other than 'float', got {names}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)  # never overwrite a previous run
    cpu, flags = cpu_flags()
    host = f"CPU {cpu} [{flags or 'no int8 flags'}]"
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
    rows: list[dict[str, Any]] = []
    times = time_interleaved(files, size, threads=args.threads, repeats=args.repeats)
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
                    f"{cpu} [{flags}]",
                ]
                for r in rows
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
        f"--recipes {' '.join(args.recipes)}{' --ablate' if args.ablate else ''} --out OUT`",
        "",
        "Fused ops per graph: `" + json.dumps({r["graph"]: r["ops"] for r in rows}) + "`",
    ]
    write_results(out / "results.json", result, out / "results.md", "\n".join(lines) + "\n")
    log.info("wrote %s/results.md (%s)", out, host)


if __name__ == "__main__":
    main()
