"""Video on a bundle: ``onnx_video_predictor`` (encoder + memory graphs on onnxruntime inside SAM 2's video
predictor) matches the torch model, and ``sam2-quant track`` writes masks, overlays and a record
(tiny SAM 2, seeded random init, 256 px; slow)."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.errors import BundleError
from sam2_quant_plugin.eval.metrics import mask_iou
from sam2_quant_plugin.eval.video import make_video_predictor
from sam2_quant_plugin.onnx.pipeline import export_bundle
from sam2_quant_plugin.sam2.ort_modules import OrtMaskDecoder, OrtMemoryAttention
from sam2_quant_plugin.sam2.ort_video import OrtForwardImage, onnx_video_predictor
from sam2_quant_plugin.sam2.video import default_video_dir, first_frame_points, first_frames, propagate
from tests.conftest import SMALL as S

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


@pytest.fixture(scope="module")
def bundle(tiny_sam2: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("video") / "bundle"
    graphs = ("memory_attention", "memory_encoder", "sam_mask_decoder")
    export_bundle(copy.deepcopy(tiny_sam2), out, image_size=S, graphs=graphs)
    return out


def test_onnx_video_predictor_matches_the_torch_video_loop(tiny_sam2, bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    vp = onnx_video_predictor(bundle)  # rebuilds the float model from the manifest (seed 0)
    assert isinstance(vp.forward_image, OrtForwardImage)
    clip = first_frames(default_video_dir(), 5, tmp_path)
    points, _ = first_frame_points(clip, 2)
    got = propagate(vp, clip, points)
    ref = propagate(make_video_predictor(tiny_sam2), clip, points)
    ious = [mask_iou(a, b).mean_iou for a, b in zip(got, ref)]
    assert len(ious) == 5
    assert min(ious) > 0.99, ious  # float files: the encoder file (no-memory embedding taken back off) too
    assert isinstance(vp.memory_attention, OrtMemoryAttention)
    assert vp.memory_attention.max_obj_ptr_tokens > 0
    assert isinstance(vp.sam_mask_decoder, OrtMaskDecoder)
    assert vp.sam_mask_decoder.calls >= 5  # the prompts and every propagated frame went through the file


def test_without_the_mask_decoder_graph_the_decoder_runs_in_torch(bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sam2.modeling.sam.mask_decoder import MaskDecoder

    no_decoder = tmp_path / "no_decoder"
    shutil.copytree(bundle, no_decoder)
    manifest = json.loads((no_decoder / "manifest.json").read_text())
    (no_decoder / manifest["files"].pop("sam_mask_decoder")).unlink()
    (no_decoder / "manifest.json").write_text(json.dumps(manifest))
    vp = onnx_video_predictor(no_decoder)
    assert isinstance(vp.sam_mask_decoder, MaskDecoder)
    assert isinstance(vp.memory_attention, OrtMemoryAttention)


def test_a_bundle_without_memory_graphs_names_the_export_flag(bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    image_only = tmp_path / "image_only"
    shutil.copytree(bundle, image_only)
    manifest = json.loads((image_only / "manifest.json").read_text())
    for key in ("memory_attention", "memory_encoder"):
        (image_only / manifest["files"].pop(key)).unlink()
        manifest["bytes"].pop(key)
    (image_only / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match=r"no memory_attention / memory_encoder graph.*--graphs memory_attention"
    ):
        onnx_video_predictor(image_only)


def test_track_writes_masks_overlays_and_a_record(bundle, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    args = ["track", "--onnx-dir", str(bundle), "--max-frames", "3", "--out", str(tmp_path / "runs")]
    assert main([*args, "--point", "320,240", "--box", "50,60,300,400"]) == 0
    assert main([*args, "--point", "100,100"]) == 0  # a second run gets its own folder
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    record = json.loads((runs[0] / "track.json").read_text())
    assert record["frames"] == 3
    assert len(record["objects"]) == 2
    assert record["random_init"] is True
    assert record["onnxruntime"] == [
        "image_encoder",
        "memory_attention",
        "memory_encoder",
        "sam_mask_decoder",
    ]
    masks = sorted((runs[0] / "masks").glob("*.png"))
    clip = [f.stem for f in sorted(default_video_dir().glob("*.jpg"))]
    assert [m.stem for m in masks] == clip[:3]  # named after the clip's own frames
    assert len(list((runs[0] / "overlays").glob("*.jpg"))) == 3
    labels = np.asarray(Image.open(masks[0]))
    assert set(np.unique(labels)) <= {0, 1, 2}
    area = {1: float((labels == 1).mean()), 2: float((labels == 2).mean())}
    # the recorded areas are the masks' (an object drawn later covers an earlier one where they overlap)
    assert record["area_fraction"]["0"][1] == pytest.approx(area[2], abs=1e-6)

    caplog.set_level(logging.ERROR)
    assert main(args) == 2  # no prompt
    assert "no object given" in caplog.text
    assert main([*args, "--point", "5000,10"]) == 2
    assert "outside the" in caplog.text
    assert main([*args, "--point", "1,1", "--video", str(tmp_path / "nope")]) == 2
    assert "not found" in caplog.text
