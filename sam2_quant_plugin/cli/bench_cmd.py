"""``sam2-quant bench``: float, fp16, W8A8 and mixed low-bit on onnxruntime (CPU EP; CUDA EP if present).

The variants are the methods of ``sam2-quant eval``'s registry that export as a bundle
(:data:`~sam2_quant_plugin.eval.baselines.registry.BENCH_METHODS`; the former bench names still work).
Each variant is exported into a fresh run folder, timed (median of many runs) and compared with the float
PyTorch model on photos (mask IoU of a decoded point grid); each encoder graph is also audited against the
float encoder of its precision (:mod:`.bench_audit`). Results go to ``<run>/bench.json`` and to the
Markdown file ``<run>/BENCHMARKS.md`` with device, versions and the command; ``--doc PATH`` also writes it
to PATH (``make bench`` passes ``docs/BENCHMARKS.md``). Nothing is written outside ``--out`` otherwise.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from ..errors import ConfigError
from ..eval.baselines.base import BundleSpec
from ..eval.baselines.registry import BENCH_ALIASES, BENCH_METHODS, bench_methods, unknown_bench_names
from ..int8.host import host_int8_path
from ..io.atomic import atomic_write_text
from ..io.report import md_table, write_results
from ..io.staging import final_name, new_staged_run_dir, publish_run_dir
from .bench_audit import audit_markdown, audit_variants
from .checks import check_positive, check_writable
from .common import add_model_arguments, add_nbits_accuracy_argument, build_model, weights_label
from .ort_options import check_file_target, check_threads

HELP = "benchmark float / fp16 / W8A8 / mixed low-bit / onnxruntime RTN ONNX; writes <run>/BENCHMARKS.md"
log = logging.getLogger("sam2-quant.bench")

NOTES = [
    "## How to read this",
    "",
    "- *simulated*: onnxruntime with graph optimizations off (`ORT_DISABLE_ALL`), Q/DQ run as written; "
    "*fused*: default optimizations, where the CPU EP rewrites every image-encoder Linear of a W8A8 "
    "graph into `MatMulIntegerToFloat` (int8 kernel). Check with `make_session(path, "
    "optimized_model_path=...)`.",
    "- The export keeps each Linear's bias as a separate `[1, N]` Add so that onnxruntime's "
    "`MatMulAddFusion` (which would build a float `Gemm` first) does not block the int8 fusion.",
    "- `ours-w8a8-ort` (recipe `w8a8`) stores 7-bit-magnitude GPTQ weights ([-63, 63] in int8) so the u8 "
    "x s8 kernels of CPUs without VNNI (AVX2, AVX-512 without VNNI) cannot saturate their int16 pair "
    "sums: the file gives the same numbers on every x86 CPU. `ours-w8a8-vnni-ort` (full 8-bit weights, "
    "the former default) is right on VNNI CPUs only; it is exported with `target_cpu='vnni'` and its row "
    "says what an AVX2 CPU would compute (emulated).",
    "- Conv2d layers (patch embedding, neck) are weight-only in every W8A8 recipe: without an output Q "
    "the CPU EP has no int8 conv for them, so an input Q/DQ would only cost fidelity. Their int8 codes are "
    "written as `Cast -> Mul(scale)`, which onnxruntime folds into a float weight when the session loads "
    "(a DequantizeLinear would run at every call and keep the conv off its NCHWc layout). "
    "`ours-w8a8-fidelity-ort` also keeps the inputs of block 0 and of the three stage-transition "
    "projections float (7 of 51 Linears off the int8 kernel).",
    "- With random-init weights the metric is touchy: the float model itself scores mask IoU ~0.996 "
    "against itself when Gaussian noise of 0.01 (about 0.6 grey levels) is added to its input "
    "(`sam2-quant eval`, row `float-input-noise-0.01`).",
    "- `ours-mixed-int4-ort` is weight-only (4-bit MLPs, 6-bit qkv, 8-bit rest) with 4-bit codes stored "
    "as INT4 initializers (opset 21): it shows the file-size reduction. onnxruntime's CPU EP (1.32) "
    "rewrites each of its weight-only `DequantizeLinear -> MatMul` into its own `MatMulNBits` at load, "
    "with activations rounded to int8 per block of 32 (`session.qdq_matmulnbits_accuracy_level`, default "
    "4; same output on AVX2 and VNNI CPUs, tests/int8/test_weight_only_cpus.py; `--nbits-accuracy-level 0` "
    "keeps float activations). `--weight-format matmulnbits` writes `MatMulNBits` into the file.",
    "- `ours-mixed-nbits-fp16-ort` is the CUDA EP form of the same recipe (`--profile cuda_int4_fp16`): "
    "every Linear a `MatMulNBits` (4-bit codes where they fit, else 8), fp16 activations and block "
    "scales. Compare it with `float-fp16` on the CUDA EP; on the CPU EP fp16 graphs run slower than "
    "float32. Its 8-bit convolution weights are folded into fp16 initializers by the fp16 conversion, so "
    "nothing runs per conv and call but the conv.",
    "- `ours-w4-g32-nbits-fp16-ort` is the shipped `w4_g32` recipe (4-bit, one MSE-clipped scale per 32 "
    "inputs) in the same CUDA form: its group scales are the `MatMulNBits` block scales; "
    "`ours-w4-g32-gptq-nbits-fp16-ort` the same with GPTQ rounding (same kernels and size, other codes).",
    "- `ort-rtn-int4-g32` is onnxruntime's own weight-only quantizer (`MatMulNBitsQuantizer`, RTN, 4-bit "
    "symmetric, block 32) applied to the `float-fp16` encoder (its decoder is the fp16 float decoder): "
    "the reference graph for `ours-mixed-nbits-fp16-ort` on the CUDA EP.",
    "- The graph audit counts node op types in each encoder file (subgraphs included) against the float "
    "encoder of the same precision (`float-fp16` for fp16 graphs, else `float`); it predicts the extra "
    "kernels a graph launches per inference on any EP without running it. "
    "`sam2_quant_plugin.onnx.audit.audit_graphs` compares any two graphs.",
    "- Variant names are `sam2-quant eval`'s method names (one registry); the former bench names "
    "(`w8a8`, `fp16`, `mixed-nbits-fp16`, `ort-rtn-int4-fp16`, ...) are accepted by `--variants` as "
    "aliases.",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, image_size=512)
    p.add_argument("--out", default="runs", help="parent folder of the fresh results folder")
    p.add_argument(
        "--doc",
        default=None,
        help="also (re)write this Markdown file, e.g. docs/BENCHMARKS.md (default: only <run>/BENCHMARKS.md)",
    )
    p.add_argument(
        "--variants",
        default=",".join(BENCH_METHODS),
        help=f"comma list of method names shared with sam2-quant eval: {', '.join(BENCH_METHODS)} "
        f"(former names accepted: {', '.join(f'{a}={n}' for a, n in BENCH_ALIASES.items())})",
    )
    p.add_argument("--w8a8-recipe", default="w8a8", help="recipe of the ours-w8a8-ort (W8A8) variant")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per graph")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--points-per-side", type=int, default=4, help="point grid for mask IoU")
    add_nbits_accuracy_argument(p)  # an onnxruntime option: after the model and data options


def run(args: argparse.Namespace) -> int:
    from ..io.images import bundled_images, load_image
    from ..onnx.runtime import PROVIDERS, missing_provider_message
    from ..onnx.timing import environment

    names = args.variants.split(",")
    unknown = unknown_bench_names(names)
    if unknown:
        raise ConfigError(
            f"--variants: unknown {unknown}. Fix: pick from {','.join(BENCH_METHODS)} "
            f"(the former names {','.join(BENCH_ALIASES)} also work)"
        )
    methods = bench_methods(names, w8a8_recipe=args.w8a8_recipe)
    variants = {name: m.bundle for name, m in methods.items() if m.bundle is not None}
    for flag in ("repeats", "points_per_side"):  # numbers and paths: before the model build and exports
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    check_threads(args.threads)
    check_writable(args.out)
    if args.doc is not None:
        check_file_target(args.doc, "--doc")
    model = build_model(args)
    images = [load_image(p) for p in bundled_images()]
    # staged: the folder appears when everything is written; a failure leaves nothing (sam2-quant removes it)
    run_dir = new_staged_run_dir(args.out, f"bench_{args.config}_{args.image_size}")
    final = final_name(run_dir)
    log.info("run folder: %s (appears when the benchmark is done)", final)
    result = {
        "command": "sam2-quant " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "weights": weights_label(model),
        "image_size": args.image_size,
        "environment": environment(),
        "missing_providers": [m for p in PROVIDERS if (m := missing_provider_message(p))],
        "variants": {},
    }
    for name, spec in variants.items():
        try:
            result["variants"][name] = _variant(model, images, run_dir / name, spec, args)
        except Exception as e:  # one broken variant must not lose the others' numbers
            log.exception("variant %s failed", name)
            result["failed"] = {**result.get("failed", {}), name: f"{type(e).__name__}: {e}"}
    _time_all(result["variants"], args)
    audit_variants(result["variants"])
    _final_paths(result["variants"], run_dir, final)
    text = markdown(result, final)
    write_results(run_dir / "bench.json", result, run_dir / "BENCHMARKS.md", text)
    run_dir = publish_run_dir(run_dir)
    if args.doc:  # only when asked: never a file outside --out by default
        atomic_write_text(args.doc, text, overwrite=True)
    log.info("wrote %s and %s", run_dir / "bench.json", args.doc or run_dir / "BENCHMARKS.md")
    if result["weights"].startswith("RANDOM"):
        log.warning("!!! benchmark weights are %s !!!", result["weights"])
    return 1 if result.get("failed") else 0


def _final_paths(rows: dict, partial: Path, final: Path) -> None:  # type: ignore[type-arg]
    """The file paths in ``rows`` as they will read once the staged run folder is published."""
    for row in rows.values():
        for key in ("encoder_path", "decoder_path"):
            if key in row and Path(row[key]).is_relative_to(partial):
                row[key] = str(final / Path(row[key]).relative_to(partial))


def _variant(model, images, bundle, spec: BundleSpec, args) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from ..api import freeze, prepare_qat
    from ..calibrate import calibrate
    from ..int8.parity import avx2_parity
    from ..onnx.pipeline import export_bundle
    from ..sam2.parity import pipeline_parity

    recipe, fmt, opset, post, target = (
        spec.recipe,
        spec.weight_format,
        spec.opset,
        spec.encoder_pass,
        spec.target_cpu,
    )
    suffix = "_fp16" if spec.fp16 else ""
    size = args.image_size
    qmodel = model
    if recipe:
        qmodel = prepare_qat(model, recipe)
        calibrate(qmodel, images, image_size=size, progress=False)
        qmodel = freeze(qmodel)
    m = export_bundle(
        qmodel, bundle, image_size=size, weight_format=fmt, opset=opset, fp16=spec.fp16, target_cpu=target
    )
    enc, dec = bundle / m["files"][f"encoder{suffix}"], bundle / m["files"][f"decoder{suffix}"]
    if post:
        enc = _encoder_pass(post, enc)
    row = {"recipe": recipe, "weight_format": fmt, "opset": opset, "fp16": spec.fp16, "encoder_pass": post}
    row["encoder_mb"] = enc.stat().st_size / 1e6
    row["decoder_mb"] = dec.stat().st_size / 1e6
    row["encoder_path"], row["decoder_path"] = str(enc), str(dec)
    kw = {"image_size": size, "points_per_side": args.points_per_side, "threads": args.threads}
    row["vs_float_fused"] = pipeline_parity(model, enc, dec, images, optimization="all", **kw)
    if recipe:
        row["vs_fake_quant_simulated"] = pipeline_parity(
            qmodel, enc, dec, images, optimization="disable", **kw
        )
        row["vs_fake_quant_fused"] = pipeline_parity(qmodel, enc, dec, images, optimization="all", **kw)
        row["target_cpu"] = target
        row["avx2_vs_exact"] = avx2_parity(
            qmodel, images, image_size=size, points_per_side=args.points_per_side
        )
    log.info("%s: %s", bundle.name, {k: v for k, v in row.items() if k.endswith("_mb")})
    return row


def _encoder_pass(kind: str, enc: Path) -> Path:
    """Apply a bundle's ``encoder_pass`` to the exported encoder; returns the new file."""
    if kind.startswith("ort-rtn-g") and kind.removeprefix("ort-rtn-g").isdigit():
        from ..onnx.ort_rtn import ort_rtn_quantize

        block = int(kind.removeprefix("ort-rtn-g"))
        return ort_rtn_quantize(
            enc, enc.with_name(f"{enc.stem}_ort_rtn.onnx"), block_size=block, symmetric=True
        )
    raise ValueError(f"unknown encoder pass {kind!r}")


def _time_all(rows: dict, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    """Time every variant's encoder (then decoder) round-robin on each available EP."""
    from ..onnx.runtime import available_eps
    from ..onnx.timing import time_interleaved

    for ep in available_eps():
        for graph in ("encoder", "decoder"):
            paths = {name: Path(row[f"{graph}_path"]) for name, row in rows.items()}
            kw = {"provider": ep, "threads": args.threads, "repeats": args.repeats}
            for name, stats in time_interleaved(paths, args.image_size, **kw).items():
                rows[name][f"{ep}_{graph}"] = stats


def markdown(r: dict, run_dir: object) -> str:  # type: ignore[type-arg]
    from ..onnx.timing import cpu_label

    env = r["environment"]
    eps = [k.removesuffix("_encoder") for k in next(iter(r["variants"].values())) if k.endswith("_encoder")]
    lines = ["# ONNX benchmarks (sam2-quant bench)", ""]
    if r["weights"].startswith("RANDOM"):
        lines += [
            f"**WARNING: weights are {r['weights']}. Latency is representative; IoU is plumbing only.**",
            "",
        ]
    lines += [
        f"- command: `{r['command']}`",
        f"- results: `{run_dir}/bench.json`",
        f"- image size {r['image_size']}; device: {cpu_label(env)}, GPU: {env['gpu']}",
        f"- versions: torch {env['torch']}, onnx {env['onnx']}, onnxruntime {env['onnxruntime']} "
        f"(providers {env['ort_providers']})",
        "- latency: median of repeated `session.run` calls, variants timed round-robin (one run of each "
        "per round) because the CPU was shared with other jobs: absolute numbers are noisy, ratios within a "
        "table are fair",
        *[f"- {m}" for m in r["missing_providers"]],
        "",
        *md_table(
            [
                "variant",
                "encoder MB",
                "decoder MB",
                *(h for ep in eps for h in (f"{ep} encoder ms", f"{ep} decoder ms")),
                "mask IoU vs float (fused)",
                "embed cosine vs float",
            ],
            [_latency_cells(name, row, eps) for name, row in r["variants"].items()],
        ),
    ]
    lines += ["", "Quantized variants, ORT vs their own PyTorch fake-quant model:", ""]
    lines += md_table(
        (
            "variant",
            "made for",
            "simulated mask IoU",
            "fused mask IoU (this CPU)",
            "simulated cosine",
            "fused cosine (this CPU)",
            "AVX2 CPU vs exact int8: mask IoU / cosine",
        ),
        [_fake_quant_cells(name, row) for name, row in r["variants"].items() if "vs_fake_quant_fused" in row],
    )
    lines += [
        "",
        f"This CPU's {host_int8_path().describe()}. The AVX2 column: *proof* = no weight pair can "
        "saturate, so every x86 int8 path computes the same integers; *emulated* = the exact kernel model "
        "(sam2_quant_plugin.int8) run on the bundled photos.",
    ]
    lines += audit_markdown(r["variants"])
    failed = [f"- **variant {k} failed**: {v}" for k, v in r.get("failed", {}).items()]
    lines += ["", *failed] if failed else []
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


def _latency_cells(name: str, row: dict, eps: list[str]) -> list[str]:  # type: ignore[type-arg]
    p, nan = row["vs_float_fused"], float("nan")
    times = [
        f"{row[f'{ep}_{graph}']['median_ms']:{fmt}}"
        for ep in eps
        for graph, fmt in (("encoder", ".1f"), ("decoder", ".2f"))
    ]
    sizes = [f"{row['encoder_mb']:.1f}", f"{row['decoder_mb']:.1f}"]
    return [name, *sizes, *times, f"{p.get('mask_iou', nan):.4f}", f"{p['embed_cosine']:.5f}"]


def _fake_quant_cells(name: str, row: dict) -> list[str]:  # type: ignore[type-arg]
    s, f, a, nan = (
        row["vs_fake_quant_simulated"],
        row["vs_fake_quant_fused"],
        row.get("avx2_vs_exact", {}),
        float("nan"),
    )
    avx2 = f"{a.get('mask_iou', nan):.4f} / {a.get('embed_cosine', nan):.5f}"
    return [
        name,
        f"{row.get('target_cpu', 'any')} CPU",
        f"{s.get('mask_iou', nan):.4f}",
        f"{f.get('mask_iou', nan):.4f}",
        f"{s['embed_cosine']:.6f}",
        f"{f['embed_cosine']:.6f}",
        f"{avx2} ({a.get('method', '?')})",
    ]
