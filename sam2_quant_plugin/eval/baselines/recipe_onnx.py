"""A recipe of this package as deployed: frozen model -> this package's ONNX export (weights folded into
int8 / int4 initializers, or MatMulNBits for recipes with per-group weights) -> onnxruntime CPU EP with
default optimisations.

The exported graph is the image encoder's backbone (``image -> backbone_fpn levels``, the same freeze-then-
lower path as ``export_image_encoder``), run inside an otherwise-torch copy of the teacher, so the row gets
every column the torch rows get, video included. A recipe that targets memory attention or the memory
encoder also exports those graphs and runs them in onnxruntime inside the video loop: video J then scores
the deployed memory files too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ...api import quant_state
from ...int8.host import host_int8_path
from ...int8.safety import saturation_report
from ...recipe import LayerPlan, Recipe
from .base import BuildContext, BuiltStudent, BundleSpec, Method
from .onnx_encoder import ort_built_student
from .torch_recipe import RecipeMethod

log = logging.getLogger(__name__)


class RecipeOnnxMethod(Method):
    """prepare_qat + calibrate + freeze with a recipe, then the package's ONNX export, run in onnxruntime."""

    def __init__(
        self,
        name: str,
        recipe: Recipe | str | Path,
        description: str = "",
        *,
        weight_format: str | None = None,
        fp16: bool = False,
        bundle: BundleSpec | None = None,
    ) -> None:
        """``weight_format`` None: from the recipe (int4 at 4 bits or below, MatMulNBits for per-group
        weights, else int8); ``fp16``: the exported encoder converted to fp16 (weight-only recipes);
        ``bundle``: how ``sam2-quant bench`` exports the method (see :class:`BundleSpec`)."""
        self.name, self.recipe, self.weight_format, self.fp16 = name, recipe, weight_format, fp16
        self.bundle = bundle
        self._torch = RecipeMethod(name, recipe)
        form = f", {weight_format} weights" if weight_format else ""
        form += ", fp16 graph (the CUDA EP form)" if fp16 else ""
        self.description = (
            description or f"{self._torch.description}, exported (sam2_quant onnx{form}), ORT CPU EP"
        )

    def _format(self, plans: list[LayerPlan]) -> tuple[str, int]:
        if self.weight_format is not None:
            return self.weight_format, 21 if self.weight_format == "int4" else 17
        low = min((p.weight_bits or 8) for p in plans)
        fmt, opset = ("int4", 21) if low <= 4 else ("int8", 17)
        if any(p.weight is not None and p.weight.group_size for p in plans):
            fmt, opset = "matmulnbits", 17  # per-group scales are MatMulNBits' block layout
        return fmt, opset

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        torch_row = self._torch.make_student(ctx)  # prepare + calibrate + freeze
        frozen = torch_row.model
        fmt, opset = self._format(list(quant_state(frozen).plans.values()))
        report = saturation_report(frozen)
        # a measurement, not a deployment: a VNNI-only file is scored on this CPU and says so in the row
        target = "any" if report.safe else "vnni"
        files = self._export(frozen, ctx, fmt, opset, target)
        path, memory = files.pop("backbone"), files
        if self.fp16:
            from ...onnx.fp16 import to_fp16

            path = to_fp16(path, path.with_name(f"{path.stem}_fp16.onnx"))
            fmt += " fp16"
        cpu = "right on every x86 CPU" if report.safe else f"VNNI-only file ({report.summary()})"
        return ort_built_student(
            ctx.teacher,
            path,
            a_bits=torch_row.a_bits,
            notes=f"sam2_quant export, {fmt} weights, opset {opset}, {cpu}; this CPU: "
            f"{host_int8_path().describe()}; latency vs the float export",
            avg_w_bits=torch_row.avg_w_bits,  # nominal bits, as the torch row
            memory=memory,
        )

    def _export(
        self, frozen: nn.Module, ctx: BuildContext, fmt: str, opset: int, target: str
    ) -> dict[str, Path]:
        """The backbone graph and the memory graphs the recipe targets (none for image-only recipes), from
        one frozen copy of the model."""
        from ...onnx.export import export_graphs
        from ...onnx.pipeline import bundle_graphs
        from ...sam2.export import backbone_spec, bundle_memory_specs

        work, size = ctx.work_dir, ctx.image_size
        targets = {"backbone": (work / f"{self.name}.onnx", backbone_spec(size))}
        memory = bundle_memory_specs(size, bundle_graphs(frozen))  # what a bundle would add
        targets |= {name: (work / f"{self.name}_{name}.onnx", spec) for name, spec in memory.items()}
        files = export_graphs(frozen, targets, opset=opset, weight_format=fmt, target_cpu=target)
        if memory:
            log.info("%s: %s run in onnxruntime inside the video loop", self.name, ", ".join(memory))
        return files


class RecipeAvx2Method(Method):
    """A recipe's fused int8 Linears computed as an AVX2-class CPU (no VNNI) computes them: the exact kernel
    model (pairwise int16 saturation, :mod:`sam2_quant_plugin.int8`) on any host."""

    def __init__(self, name: str, recipe: Recipe | str | Path, description: str = "") -> None:
        self.name, self.recipe = name, recipe
        self._torch = RecipeMethod(name, recipe)
        self.description = description or f"{self._torch.description}, int8 kernels of an AVX2 CPU (emulated)"

    def make_student(self, ctx: BuildContext) -> BuiltStudent:
        from dataclasses import replace

        from ...int8 import emulated

        row = self._torch.make_student(ctx)
        report = saturation_report(row.model)
        return replace(
            row,
            model=emulated(row.model, "avx2"),
            runtime="torch (AVX2 int8 emulated)",
            notes=f"{row.notes}; {report.summary()}",
            timed=False,  # the emulator's speed says nothing about the kernel's
        )
