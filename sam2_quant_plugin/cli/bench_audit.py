"""``sam2-quant bench``'s graph audit: each variant's encoder against the float encoder of its precision.

On the CUDA EP a weight-only graph can only beat its float graph if it runs the same kernels with the
Linear MatMuls swapped for ``MatMulNBits``; every extra node is an extra launch per inference. This
check needs no GPU: it reads the ONNX files (:func:`sam2_quant_plugin.onnx.audit.audit_graphs`).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("sam2-quant.bench")

#: at most this many surplus nodes are named in the Markdown (bench.json keeps up to 50)
MAX_LISTED = 16


def reference_of(row: dict) -> str:  # type: ignore[type-arg]
    """The variant whose encoder a row is audited against: ``float-fp16`` for fp16 graphs, else ``float``."""
    return "float-fp16" if row.get("fp16") else "float"


def audit_variants(rows: dict) -> None:  # type: ignore[type-arg]
    """Add ``encoder_audit`` to each row whose reference variant is also in ``rows`` (and is not itself)."""
    import onnx

    from ..onnx.audit import audit_graphs

    protos: dict[str, onnx.ModelProto] = {}

    def load(name: str) -> onnx.ModelProto:
        if name not in protos:
            protos[name] = onnx.load(str(Path(rows[name]["encoder_path"])), load_external_data=False)
        return protos[name]

    for name, row in rows.items():
        ref = reference_of(row)
        if ref == name or ref not in rows:
            continue
        audit = audit_graphs(load(name), load(ref))
        row["encoder_audit"] = {"reference": ref, **audit.to_dict()}
        if not audit.same_structure:
            log.info("%s encoder vs %s: extra %s, missing %s", name, ref, audit.extra, audit.missing)


def audit_markdown(rows: dict) -> list[str]:  # type: ignore[type-arg]
    """The audit table (and the surplus nodes of rows that have few) as Markdown lines; [] when none."""
    from ..io.report import md_table
    from ..onnx.audit import format_counts

    audited = {k: r["encoder_audit"] for k, r in rows.items() if "encoder_audit" in r}
    if not audited:
        return []
    lines = [
        "",
        "Graph audit: each encoder as written (before onnxruntime's optimizations) against the float "
        "encoder of the same precision, `MatMulNBits` counted as the `MatMul` it replaces; `none` = the "
        "same kernels as the float graph with Linear MatMuls swapped for `MatMulNBits`:",
        "",
        *md_table(
            (
                "variant",
                "reference",
                "MatMulNBits kernels",
                "ops beyond the reference",
                "ops only in reference",
            ),
            [
                (
                    name,
                    a["reference"],
                    ", ".join(f"{n} x {cfg}" for cfg, n in a["matmulnbits"].items()) or "none",
                    format_counts(a["extra"]),
                    format_counts(a["missing"], "-"),
                )
                for name, a in audited.items()
            ],
        ),
    ]
    for name, a in audited.items():
        nodes = a["extra_nodes"]
        if nodes and len(nodes) <= MAX_LISTED and sum(a["extra"].values()) <= MAX_LISTED:
            lines += ["", f"Nodes of `{name}` beyond `{a['reference']}` (name -> op types reading it):", ""]
            lines += [f"- `{n}`" for n in nodes]
    return lines
