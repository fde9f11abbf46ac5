"""Which graphs a bundle adds for a recipe's targets (SAM 2: the memory graphs and, for a video recipe over
the mask decoder, the loop's decoder graph), and the union with
``--graphs``; no model is built."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn

from sam2_quant_plugin.models.generic import GenericAdapter
from sam2_quant_plugin.recipe import load_recipe
from sam2_quant_plugin.sam2.adapter import SAM2Adapter

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("targets", "graphs"),
    [
        (("image_encoder",), ()),
        (("image_encoder", "sam_mask_decoder"), ()),
        (("memory_attention",), ("memory_attention",)),
        (("memory_encoder",), ("memory_encoder",)),
        (("memory_encoder", "memory_attention"), ("memory_attention", "memory_encoder")),  # fixed order
        (("memory_attention.layers.0",), ("memory_attention",)),  # a part of the module
        (("",), ("memory_attention", "memory_encoder", "sam_mask_decoder")),  # the whole model: all three
        (
            ("memory_encoder", "sam_mask_decoder"),
            ("memory_encoder", "sam_mask_decoder"),
        ),  # the loop's decoder
        (("memory_attention", "sam_mask_decoder.transformer"), ("memory_attention", "sam_mask_decoder")),
        (("memory_attention_extra", "memory_encoders"), ()),  # a prefix of the name is not the module
        (("obj_ptr_proj", "mask_downsample"), ()),  # video-path layers outside both graphs
    ],
)
def test_sam2_targets_map_to_memory_graphs(targets: tuple[str, ...], graphs: tuple[str, ...]) -> None:
    assert SAM2Adapter().target_graphs(targets) == graphs


@pytest.mark.parametrize(
    ("recipe", "graphs"),
    [
        ("w8a8", ()),
        ("mixed", ()),  # the decoder, but no video graph: decoder.onnx holds it
        ("w8a8_video", ("memory_attention", "memory_encoder")),
        ("w8a8_video_attn", ("memory_attention", "memory_encoder")),
        (
            str(ROOT / "benchmarks/recipes/w8a8_video_attn_w8dec.yaml"),
            ("memory_attention", "memory_encoder", "sam_mask_decoder"),
        ),
    ],
)
def test_shipped_recipes_need_their_memory_graphs(recipe: str, graphs: tuple[str, ...]) -> None:
    assert SAM2Adapter().target_graphs(load_recipe(recipe).targets) == graphs


def test_generic_models_need_no_extra_graph() -> None:
    assert GenericAdapter().target_graphs(("",)) == ()


def test_bundle_graphs_are_the_recipes_then_the_requested_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from sam2_quant_plugin.onnx import pipeline

    monkeypatch.setattr(pipeline, "adapter_for", lambda _: SAM2Adapter())
    state = SimpleNamespace(recipe=SimpleNamespace(targets=("image_encoder", "memory_encoder")))
    monkeypatch.setattr(pipeline, "quant_state_or_none", lambda _: state)
    model = nn.Identity()
    assert pipeline.bundle_graphs(model) == ("memory_encoder",)
    assert pipeline.bundle_graphs(model, ("memory_attention", "memory_encoder")) == (
        "memory_encoder",
        "memory_attention",
    )
    monkeypatch.setattr(pipeline, "quant_state_or_none", lambda _: None)  # a float model: only on request
    assert pipeline.bundle_graphs(model) == ()
    assert pipeline.bundle_graphs(model, ["memory_attention"]) == ("memory_attention",)
