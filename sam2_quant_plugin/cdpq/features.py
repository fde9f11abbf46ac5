"""Forward hooks that capture layer outputs by module name, for matching teacher/student layers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


@dataclass
class Captured:
    """One layer output and the axis that holds its channels (1 for Conv2d, last otherwise)."""

    value: Tensor
    ch_dim: int


class FeatureCapture:
    """Context manager: ``with FeatureCapture(model, names) as cap: model(...)``; then ``cap.outputs``.

    Hooks are removed on exit. ``detach=True`` (teacher) stores outputs without a graph; the student keeps
    it so that per-layer losses back-propagate. A layer called more than once keeps its last output.
    """

    def __init__(self, model: nn.Module, names: Iterable[str], *, detach: bool = False) -> None:
        self.model = model
        self.names = list(names)
        self.detach = detach
        self.outputs: dict[str, Captured] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str, module: nn.Module):  # type: ignore[no-untyped-def]
        ch_dim = 1 if isinstance(module, nn.Conv2d) else -1

        def hook(_mod: nn.Module, _inp: tuple, out: object) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(t, Tensor):
                self.outputs[name] = Captured(t.detach() if self.detach else t, ch_dim)

        return hook

    def __enter__(self) -> FeatureCapture:
        self.outputs = {}
        modules = dict(self.model.named_modules())
        missing = [n for n in self.names if n not in modules]
        if missing:
            raise KeyError(f"{len(missing)} layer(s) not in the model, e.g. {missing[:3]}")
        for n in self.names:
            self._handles.append(modules[n].register_forward_hook(self._hook(n, modules[n])))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def matching_layers(teacher: nn.Module, student: nn.Module, candidates: Iterable[str]) -> list[str]:
    """Names in ``candidates`` present in both models with the same parameter shapes."""
    t_mods, s_mods = dict(teacher.named_modules()), dict(student.named_modules())
    out = []
    for n in candidates:
        if n not in t_mods or n not in s_mods:
            continue
        tw, sw = getattr(t_mods[n], "weight", None), getattr(s_mods[n], "weight", None)
        if tw is not None and sw is not None and tw.shape != sw.shape:
            continue
        out.append(n)
    return out
