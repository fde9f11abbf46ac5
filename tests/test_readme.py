"""README's Python blocks run as written: a user's first copy-paste must not fail on any CPU.

Each ```python block of README.md runs in a scratch folder (``qconfigs/`` linked in, as in a checkout),
the second in the first's namespace, as in one session. The second uses names the README leaves to the
user (``model``, ``calib_batches``, ``x``, ``float_model``); they are given here as a small MLP. The SAM 2
block runs at 256 px instead of SAM 2's 1024 (``build_sam2_model`` is wrapped) to keep the test short;
nothing else in the text is changed.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import sam2_quant_plugin as sq

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_the_blocks_this_test_runs() -> None:
    assert len(BLOCKS) == 2
    assert "build_sam2_model" in BLOCKS[0]
    assert "export_module" in BLOCKS[1]


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qconfigs").symlink_to(ROOT / "qconfigs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sq, "build_sam2_model", functools.partial(sq.build_sam2_model, image_size=256))
    torch.manual_seed(0)

    def mlp() -> nn.Module:
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))

    names: dict[str, Any] = {}
    exec(compile(BLOCKS[0], "README.md", "exec"), names)
    # block 1: a converted int8 model, the recipe file and the per-layer plan
    assert sq.load_recipe("my_recipe.yaml").name
    assert names["plan"]
    assert isinstance(names["int8"], nn.Module)
    bundle = tmp_path / "my_bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["decoder.onnx", "encoder.onnx", "manifest.json"]
    encoder = ort.InferenceSession(str(bundle / "encoder.onnx"), providers=["CPUExecutionProvider"])
    image = np.zeros((1, 3, 256, 256), dtype=np.float32)
    assert all(np.isfinite(o).all() for o in encoder.run(None, {encoder.get_inputs()[0].name: image}))

    x = torch.randn(4, 16)  # block 2 reuses block 1's `sq`; `model` there is the user's own
    names.update(model=mlp(), float_model=mlp(), x=x, calib_batches=[x, 2 * x])
    exec(compile(BLOCKS[1], "README.md", "exec"), names)
    # block 2: the exported file runs on onnxruntime and matches the frozen model; the saved model reloads
    session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = names["frozen"](x).numpy()
        again = names["again"](x).numpy()
    np.testing.assert_allclose(got, want, atol=2e-2 * float(np.abs(want).max()))
    np.testing.assert_array_equal(again, want)
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "my_bundle", "my_recipe.yaml", "q.pt", "qconfigs"]
