"""SAM 2's video graphs as their own ONNX files: the memory encoder (float and weight-quantized) and a
bundle that adds both memory graphs through the CLI (tiny SAM 2, seeded random init, 256 px; slow)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from sam2_quant_plugin import LayerRule, Recipe, calibrate, freeze, prepare_qat, quant_state, weight_spec
from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.errors import ExportError
from sam2_quant_plugin.onnx import make_session, quant_ranges
from sam2_quant_plugin.sam2.export import bundle_memory_specs, export_memory_encoder
from sam2_quant_plugin.sam2.graphs import MEMORY_ENCODER_INPUTS, MemoryEncoderGraph, memory_encoder_example
from tests._utils.metrics import lower_metric
from tests.conftest import SMALL as S

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


def _ort_vs_torch(model: torch.nn.Module, path: Path) -> float:
    sess = make_session(path, optimization="all")
    worst = 0.0
    for seed in (0, 1):
        torch.manual_seed(seed)
        inputs = memory_encoder_example(model, S)
        with torch.no_grad():
            ref = [t.numpy() for t in MemoryEncoderGraph(model)(*inputs)]
        out = sess.run(None, dict(zip(MEMORY_ENCODER_INPUTS, (t.numpy() for t in inputs))))
        worst = max(worst, *(float(np.abs(o - r).max()) for o, r in zip(out, ref)))
    return worst


def test_memory_encoder_exports_float_and_weight_quantized(tiny_sam2, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = copy.deepcopy(tiny_sam2)
    assert _ort_vs_torch(model, export_memory_encoder(model, tmp_path / "f.onnx", image_size=S)) < 1e-4

    recipe = Recipe(
        name="mem-w8", targets=("memory_encoder",), default=LayerRule("<default>", weight=weight_spec(bits=8))
    )
    q = prepare_qat(model, recipe)
    graph = MemoryEncoderGraph(q)
    calibrate(q, forward_loop=lambda m: graph(*memory_encoder_example(m, S)), progress=False)
    frozen = freeze(q)
    path = export_memory_encoder(frozen, tmp_path / "q.onnx", image_size=S)
    layers = {layer for layer, _ in quant_ranges(onnx.load(str(path)))}  # the plan the file carries
    assert layers == set(quant_state(frozen).plans)
    assert all(name.startswith("memory_encoder.") for name in layers)
    assert _ort_vs_torch(frozen, path) < 1e-4  # int8 weights folded, activations float: exact up to fp32


def test_unknown_memory_graph_is_a_named_error() -> None:
    with pytest.raises(ExportError, match=r"unknown graph\(s\) \['memory_decoder'\]"):
        bundle_memory_specs(S, ["memory_decoder"])


def test_export_command_adds_the_memory_graphs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bundle"
    args = [
        "export",
        "--image-size",
        str(S),
        "--out",
        str(out),
        "--graphs",
        "memory_attention",
        "memory_encoder",
    ]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"encoder", "decoder", "memory_attention", "memory_encoder"}
    for key in ("memory_attention", "memory_encoder"):
        sess = make_session(out / manifest["files"][key])
        assert sess.get_inputs(), key
    validate = ["validate", "--onnx-dir", str(out), "--repeats", "1", "--points-per-side", "2"]
    assert main([*validate, "--max-frames", "4"]) == 0
    report = json.loads((out / "report.json").read_text())
    video = report["video_parity"]  # the memory graphs ran inside SAM 2's video loop, pointers included
    assert video["graphs"] == "memory_attention+memory_encoder"
    assert video["n_frames"] == 4
    assert video["max_obj_ptr_tokens"] > 0
    assert video["video_j"] > 0.99, video  # float files vs the float model
    # the threshold is applied: video J lowered by 0.02 stands for memory graphs that drift (these float files
    # match torch to rounding), and validate fails on it with exit 1
    import sam2_quant_plugin.sam2.parity as parity

    lower_metric(monkeypatch, parity, "video_parity", "video_j", by=0.02)
    assert main([*validate, "--max-frames", "3", "--min-video-j", "0.985"]) == 1
    assert json.loads((out / "report-2.json").read_text())["passed"] is False


def test_memory_path_recipe_calibrates_on_video_and_its_graphs_export(tiny_sam2, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``calibrate(model)`` with memory layers in the recipe runs the video path (bundled clip); the W8A8
    memory graphs then export into a bundle and match the fake-quant model on onnxruntime."""
    from sam2_quant_plugin import activation_spec
    from sam2_quant_plugin.eval.metrics import cosine
    from sam2_quant_plugin.onnx.pipeline import export_bundle
    from sam2_quant_plugin.sam2.graphs import MEMORY_INPUTS, MemoryAttentionGraph, memory_example
    from sam2_quant_plugin.sam2.rope import patch_real_rope

    linear = LayerRule("type:Linear", weight=weight_spec(bits=7), activation=activation_spec(bits=8))
    recipe = Recipe(
        name="mem-w8a8",
        targets=("memory_attention", "memory_encoder"),
        default=LayerRule("<default>", weight=weight_spec(bits=8)),
        rules=(linear,),
    )
    q = prepare_qat(copy.deepcopy(tiny_sam2), recipe)
    calibrate(q, progress=False)  # photos, then the video clip: no quantizer left unobserved
    frozen = freeze(q)
    manifest = export_bundle(
        frozen, tmp_path / "b", image_size=S, graphs=("memory_attention", "memory_encoder")
    )
    files = {k: tmp_path / "b" / v for k, v in manifest["files"].items()}
    planned = {layer for layer, _ in quant_ranges(onnx.load(str(files["memory_attention"])))}
    assert planned
    assert all(n.startswith("memory_attention.") for n in planned)
    assert _ort_vs_torch(frozen, files["memory_encoder"]) < 1e-3

    real = copy.deepcopy(frozen)
    patch_real_rope(real)
    inputs = memory_example(real, S, 2)
    with torch.no_grad():
        ref = MemoryAttentionGraph(real)(*inputs)
    for optimization in ("disable", "all"):
        out = make_session(files["memory_attention"], optimization=optimization).run(
            None, dict(zip(MEMORY_INPUTS, (t.numpy() for t in inputs)))
        )[0]
        assert cosine(torch.from_numpy(out), ref) > 0.999, optimization
