"""A bundle freezes one copy of the model and checks its int8 saturation once, for all its graphs, and
writes the same files as exporting each graph alone (TinyNet, no SAM 2)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from sam2_quant_plugin.api import prepare_qat
from sam2_quant_plugin.calibrate import calibrate
from sam2_quant_plugin.models.adapter import GraphSpec
from sam2_quant_plugin.models.info import model_info
from sam2_quant_plugin.onnx import export as export_mod
from sam2_quant_plugin.onnx import pipeline
from tests.onnx._models import TinyNet, example, w8a8_recipe

pytestmark = pytest.mark.onnx


class _Stem(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.stem(x)


SPECS = {
    "net": GraphSpec(lambda m: m, lambda _: (example(),), (("x",), ("y",))),
    "stem": GraphSpec(_Stem, lambda _: (example(),), (("x",), ("features",)), ("stem",)),
}


def _counting(calls: Counter[str], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return fn(*args, **kwargs)

    return spy


def test_bundle_freezes_and_checks_once_and_writes_what_export_graph_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = prepare_qat(TinyNet().eval(), w8a8_recipe(weight_bits=7))  # prepared, not frozen
    calibrate(model, forward_loop=lambda m: m(example(8)), progress=False)
    adapter = SimpleNamespace(name="tiny", info=model_info, graphs=lambda m, **kw: dict(SPECS))
    monkeypatch.setattr(pipeline, "adapter_for", lambda _: adapter)
    calls: Counter[str] = Counter()
    for name in ("freeze", "saturation_report", "_scope_input_quant"):  # freeze, check, deepcopy
        monkeypatch.setattr(export_mod, name, _counting(calls, name, getattr(export_mod, name)))

    manifest = pipeline.export_bundle(model, tmp_path / "bundle")
    assert manifest["files"] == {"net": "net.onnx", "stem": "stem.onnx"}
    assert calls == {"freeze": 1, "saturation_report": 1, "_scope_input_quant": 1}

    calls.clear()
    for name, spec in SPECS.items():  # each graph alone: the same bytes, metadata included
        alone = export_mod.export_graph(model, tmp_path / f"{name}.onnx", spec)
        assert alone.read_bytes() == (tmp_path / "bundle" / f"{name}.onnx").read_bytes(), name
    assert calls == {"freeze": 2, "saturation_report": 2, "_scope_input_quant": 2}
