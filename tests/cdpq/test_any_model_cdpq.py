"""CDPQ on a model that is not SAM 2: torchvision resnet18 (random init) through the generic adapter.

The generic adapter's task is ``{"output": model(batch)}`` and its loss term ``output``; the batches are
plain tensors. The search must lower bits where the loss allows, write a recipe that the core loads
back onto a fresh resnet18, and the result must export and match onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torchvision.models import resnet18

import sam2_quant_plugin as sq
from sam2_quant_plugin.cdpq import CDPQConfig, run_cdpq
from sam2_quant_plugin.onnx import export_module


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=10).eval()


def _batches(n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 32, 32, generator=g) for _ in range(n)]


def test_cdpq_search_on_resnet18_lowers_bits_and_its_recipe_exports(tmp_path: Path) -> None:
    cfg = CDPQConfig(
        name="resnet18",
        model="generic",
        teacher_config="resnet18",
        student_config="resnet18",
        target_roots=("layer3", "layer4", "fc"),
        ladder=(8, 4, 2),
        rounds=1,
        epochs_per_round=1,
        lr=1e-5,
        impact_threshold=0.02,
        threshold_growth=1.0,
        max_passes=2,
    )
    teacher = _resnet()
    summary = run_cdpq(
        cfg, tmp_path, teacher=teacher, batches=(_batches(2, 0), _batches(2, 1)), progress=False
    )
    run_dir = Path(summary["run_dir"])
    bits = summary["bits"]
    assert set(bits) == {
        n
        for n, m in teacher.named_modules()
        if n.startswith(cfg.target_roots) and isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    }
    attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert any(a["accepted"] for a in attempts), f"no step was kept: {attempts}"
    for a in attempts:  # kept exactly when the loss rose less than the threshold, rolled back otherwise
        assert a["accepted"] == (a["rise"] <= a["threshold"]), a
    last = {a["layer"]: a for a in attempts}
    for layer, a in last.items():
        assert bits[layer] == (a["bits"] if a["accepted"] else a["from_bits"]), (layer, a)
    assert min(bits.values()) < 8, f"no layer was lowered: {bits}"

    recipe = sq.load_recipe(run_dir / "recipe.yaml")
    frozen = sq.quantize(_resnet(), recipe, _batches(2, 2))
    assert sq.current_recipe(frozen).rules, "the searched recipe quantizes layers of a fresh resnet18"
    x = torch.randn(1, 3, 32, 32)
    path = export_module(frozen, (x,), tmp_path / "r.onnx", input_names=("x",), output_names=("y",))
    y_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        y = frozen(x).numpy()
    np.testing.assert_allclose(y_ort, y, rtol=1e-3, atol=1e-3 * float(np.abs(y).max()))
