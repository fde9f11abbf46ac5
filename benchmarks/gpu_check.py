"""One-command GPU check (``make gpu-check``): what a lent GPU machine should confirm, in one short run.

    python benchmarks/gpu_check.py --out runs            # needs torch with CUDA and onnxruntime-gpu

1. torch sees a GPU and onnxruntime has the CUDA EP (else: exit 2 naming what is missing);
2. MatMulNBits on the CUDA EP at 2, 4 and 8 bits (a tiny model, parity against the CPU EP): whether the
   2-bit kernels exist there, which decides ``nbits_widths`` for the ``cuda_int4_fp16`` profile;
3. the CDPQ search on CUDA at 1024 px (tiny SAM 2, random init unless --checkpoint), timed;
4. ``sam2-quant bench`` at 1024 px with the CUDA-form variants (bench adds the CUDA EP columns itself).

Every step's outcome (ok / failed with the error) goes to ``<out>/gpu-check-*/results.json`` and
``results.md``; a failed step does not stop the others. Written and checked on a CPU-only machine (step 1
refuses there); not yet run on a GPU.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sam2_quant_plugin.io.atomic import new_run_dir
from sam2_quant_plugin.io.report import md_table, write_results

log = logging.getLogger("benchmarks.gpu_check")
CUDA_VARIANTS = "float,float-fp16,ours-mixed-nbits-fp16-ort,ours-w4-g32-nbits-fp16-ort,ort-rtn-int4-g32"


def environment() -> dict[str, Any]:
    import onnxruntime as ort

    env: dict[str, Any] = {"torch": torch.__version__, "onnxruntime": ort.__version__}
    env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    env["ort_providers"] = ort.get_available_providers()
    return env


def nbits_on_cuda(work: Path) -> dict[str, Any]:
    """Export a 3-Linear model at 2/4/8 bits as MatMulNBits; run it on the CUDA and CPU EPs; compare."""
    import sam2_quant_plugin as sq
    from sam2_quant_plugin.onnx import export_module, make_session

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16)
    ).eval()
    rules = tuple(sq.LayerRule(str(i), weight=sq.weight_spec(bits=b)) for i, b in ((0, 2), (2, 4), (4, 8)))
    frozen = sq.quantize(model, sq.Recipe(name="nbits248", rules=rules), [torch.randn(8, 64)])
    x = torch.randn(4, 64)
    path = export_module(
        frozen,
        (x,),
        work / "nbits.onnx",
        input_names=("x",),
        output_names=("y",),
        weight_format="matmulnbits",
    )
    cpu = make_session(path, "cpu").run(None, {"x": x.numpy()})[0]
    sess = make_session(path, "cuda")
    if sess.get_providers()[0] != "CUDAExecutionProvider":
        return {"ok": False, "error": f"the session fell back to {sess.get_providers()}"}
    gpu = sess.run(None, {"x": x.numpy()})[0]
    return {"ok": True, "max_abs_cuda_vs_cpu": float(np.abs(gpu - cpu).max()), "widths": [2, 4, 8]}


def cdpq_argv(out: Path, image_size: int, ckpt: list[str]) -> list[str]:
    """``sam2-quant cdpq`` on CUDA: the 8/4 ladder to 14 MB, layers ordered by probe."""
    size = ["--image-size", str(image_size)]
    search = ["--ladder", "8", "4", "--target-mb", "14", "--order-by", "probe"]
    return ["cdpq", "--device", "cuda", *size, *search, "--no-progress", "--out", str(out), *ckpt]


def bench_argv(out: Path, image_size: int, ckpt: list[str]) -> list[str]:
    """``sam2-quant bench`` with the CUDA-form variants (bench adds the CUDA EP columns itself)."""
    return ["bench", "--image-size", str(image_size), "--variants", CUDA_VARIANTS, "--out", str(out), *ckpt]


def _cli(args: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sam2_quant_plugin.cli.main", *args], check=False)
    return {"ok": done.returncode == 0, "exit": done.returncode, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__)
    p.add_argument("--out", default="runs")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--image-size", type=int, default=1024)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = environment()
    if env["cuda"] is None or "CUDAExecutionProvider" not in env["ort_providers"]:
        log.error(
            "no GPU to check: torch CUDA %s, onnxruntime providers %s. Fix: run on a GPU machine with "
            "torch+CUDA and onnxruntime-gpu",
            env["cuda"],
            env["ort_providers"],
        )
        return 2
    out = new_run_dir(args.out, "gpu-check")
    ckpt = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    steps: dict[str, Any] = {}
    try:
        steps["matmulnbits_cuda"] = nbits_on_cuda(out)
    except Exception as e:  # a missing kernel is a finding, not a crash
        steps["matmulnbits_cuda"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    steps["cdpq_cuda"] = _cli(cdpq_argv(out, args.image_size, ckpt))
    steps["bench_cuda_ep"] = _cli(bench_argv(out, args.image_size, ckpt))
    rows = [
        [k, "ok" if v.get("ok") else "FAILED", {kk: vv for kk, vv in v.items() if kk != "ok"}]
        for k, v in steps.items()
    ]
    md = [f"# GPU check ({env['cuda']}, torch {env['torch']}, onnxruntime {env['onnxruntime']})", ""]
    md += md_table(["step", "result", "details"], rows)
    write_results(
        out / "results.json", {"environment": env, "steps": steps}, out / "results.md", "\n".join(md) + "\n"
    )
    print("\n".join(md))  # noqa: T201 (a benchmark prints its table)
    return 0 if all(v.get("ok") for v in steps.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
