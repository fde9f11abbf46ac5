"""The model-adapter seam: everything model-specific the generic layers need, behind one protocol.

Generic code (calibration, export, CDPQ, int8 checks) asks :func:`~.registry.adapter_for` for the
model's adapter and never imports a model family. Adding a model family is one folder with one class
that implements :class:`ModelAdapter`, registered in :mod:`.registry` (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .info import ModelInfo

ForwardLoop = Callable[[nn.Module], None]
Task = Callable[[nn.Module, Any], dict[str, Any]]
Names = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class GraphSpec:
    """One deployment graph: ``wrap(model)`` is traced on ``example(model)``.

    ``names`` are the ONNX input/output names (or a function of the wrapper and the example, for outputs
    known only after a forward); ``roots`` are the module prefixes whose quantized layers must appear in
    the graph; ``axes`` the dynamic axes; ``check(model)`` raises when the model cannot be exported as
    this graph (e.g. complex-valued RoPE) and says how to fix it.
    """

    wrap: Callable[[nn.Module], nn.Module]
    example: Callable[[nn.Module], tuple[torch.Tensor, ...]]
    names: Names | Callable[[nn.Module, tuple[torch.Tensor, ...]], Names]
    roots: tuple[str, ...] = ("",)
    axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    check: Callable[[nn.Module], None] | None = None


@runtime_checkable
class ModelAdapter(Protocol):
    """What one model family provides. Methods a family cannot support raise an error naming the fix.

    Optional hooks (looked up with :func:`hook`; an adapter without them keeps working):

    * ``target_graphs(targets) -> tuple[str, ...]``: the graphs a bundle must add (names
      ``graphs(..., extra=...)`` takes) so that the modules under a recipe's ``targets`` ship.
    * ``extra_parity(model, files, *, optimization, **kw) -> dict[str, dict]``: named onnxruntime-vs-torch
      checks of the graphs :meth:`parity` does not run (SAM 2: the memory graphs inside its video loop),
      each a metrics dict checked against :data:`sam2_quant_plugin.onnx.parity.THRESHOLDS`.
    * ``check_graph(proto, path, key, manifest)``: raise :class:`~sam2_quant_plugin.errors.BundleError` when
      the bundle file ``key`` (its ONNX proto, weights not loaded) is not the graph its manifest says.
    * ``manifest_problems(manifest) -> list[str]``: what is wrong with the family's own manifest fields.
    """

    #: the family's name, as written into :class:`ModelInfo.family`, manifests and ``--model``
    name: str

    def matches(self, model: nn.Module) -> bool:
        """Whether ``model`` belongs to this family."""
        ...

    def build(
        self,
        config: str,
        checkpoint: str | Path | None,
        *,
        image_size: int | None,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> nn.Module:
        """A float model (seeded random init without ``checkpoint``) with its :class:`ModelInfo` attached."""
        ...

    def info(self, model: nn.Module) -> ModelInfo:
        """The model's record (family, config, weights, seed, input size)."""
        ...

    def default_targets(self) -> tuple[str, ...]:
        """Module prefixes a recipe without ``targets`` should quantize (``("",)``: the whole model)."""
        ...

    def forward_loop(self, images: Any, *, plans: Sequence[str], **kw: Any) -> ForwardLoop:
        """The default calibration loop over ``images`` (photos, a folder, tensors, None for bundled data);
        ``plans`` are the quantized layer names, so the loop can skip parts nothing quantizes."""
        ...

    def graphs(self, model: nn.Module, *, image_size: int | None, **kw: Any) -> dict[str, GraphSpec]:
        """The deployment graphs of an ONNX bundle, by file stem (``encoder``, ``decoder``, ``model``)."""
        ...

    def parity(
        self,
        model: nn.Module,
        files: Mapping[str, Path],
        images: Sequence[Any],
        *,
        image_size: int | None,
        optimization: str = "all",
        **kw: Any,
    ) -> dict[str, float | int | str]:
        """onnxruntime on ``files`` vs ``model`` on ``images``: metrics with the keys of
        :data:`sam2_quant_plugin.onnx.parity.THRESHOLDS` that apply."""
        ...

    def fidelity(
        self,
        teacher: nn.Module,
        student: nn.Module,
        images: Sequence[Any],
        *,
        image_size: int | None,
        **kw: Any,
    ) -> dict[str, float]:
        """``student`` vs ``teacher`` on ``images``: the family's headline metrics (SAM 2: point-prompt mask
        IoU and embedding cosine), used by ``run`` and the AVX2 int8 parity."""
        ...

    def batches(self, paths: Sequence[Path], *, image_size: int | None, seed: int, **kw: Any) -> list[Any]:
        """CDPQ distillation batches from image files (SAM 2: photos with seeded point/box prompts)."""
        ...

    def task(self) -> Task:
        """The CDPQ task: ``task(model, batch) -> outputs`` (dict of tensors the distillation loss reads)."""
        ...


def hook(adapter: object, name: str) -> Callable[..., Any] | None:
    """The adapter's optional hook ``name`` (see :class:`ModelAdapter`), or None."""
    fn = getattr(adapter, name, None)
    return fn if callable(fn) else None
