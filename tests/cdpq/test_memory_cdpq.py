"""CDPQ over SAM 2's memory path: the teacher's calls into memory attention and the memory encoder on a
clip are recorded and replayed (with gradients) as the student's batches; the search lowers their bits
by the same keep-or-roll-back rule (tiny SAM 2, seeded random init)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sam2_quant_plugin import load_recipe, prepare_qat, resolve
from sam2_quant_plugin.cdpq import CDPQConfig, run_cdpq
from sam2_quant_plugin.cdpq.config import LossWeights
from sam2_quant_plugin.cdpq.losses import distill_loss
from sam2_quant_plugin.errors import ConfigError, ModelConfigError
from sam2_quant_plugin.models.registry import get_adapter
from sam2_quant_plugin.sam2.memory_batches import (
    MemoryBatch,
    memory_task,
    record_memory_batches,
    unreplayed_roots,
)
from sam2_quant_plugin.sam2.video import default_video_dir, runs_video, video_frames


def _clip(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(video_frames(default_video_dir())[:n]):
        shutil.copy(f, folder / f"{i:05d}.jpg")
    return folder


def test_which_targets_need_recorded_memory_calls() -> None:
    assert runs_video(("image_encoder", "memory_attention.layers.0"))
    assert not runs_video(("image_encoder", "sam_mask_decoder"))
    assert unreplayed_roots(("memory_encoder", "obj_ptr_proj")) == ["obj_ptr_proj"]


def test_memory_targets_without_a_teacher_or_on_unreplayed_modules_are_named_errors() -> None:
    adapter = get_adapter("sam2")
    with pytest.raises(ModelConfigError, match="need the float teacher"):
        adapter.batches([], image_size=64, seed=0, target_roots=("memory_attention",))
    with pytest.raises(ModelConfigError, match=r"cannot distil \['obj_ptr_proj'\]"):
        adapter.batches(
            [], image_size=64, seed=0, target_roots=("obj_ptr_proj",), teacher=torch.nn.Identity()
        )
    with pytest.raises(ConfigError, match="video_frames=0"):
        CDPQConfig(video_frames=0)


def test_module_outputs_are_an_output_loss_term() -> None:
    t = {"output:memory_attention": torch.ones(4, 2), "output:memory_encoder": torch.zeros(3)}
    s = {"output:memory_attention": torch.ones(4, 2) * 1.5, "output:memory_encoder": torch.zeros(3)}
    total, parts, _ = distill_loss(t, s, {}, {}, LossWeights(output=1.0))
    assert parts["output"] > 0
    assert float(total) == pytest.approx(parts["output"] * 1.0)
    _, parts0, _ = distill_loss(t, t, {}, {}, LossWeights(output=1.0))
    assert parts0["output"] == 0.0


@pytest.mark.slow
def test_recorded_calls_replay_the_teachers_outputs_with_gradients(
    tiny_sam2: torch.nn.Module, tmp_path: Path
) -> None:
    seen: list[torch.Tensor] = []
    hook = tiny_sam2.memory_attention.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
    try:
        batches = record_memory_batches(tiny_sam2, _clip(tmp_path / "clip", 3), n_per_side=1)
    finally:
        hook.remove()
    attn = [b for b in batches if b.module == "memory_attention"]
    assert len(attn) == 2  # frames 1 and 2 read memories (frame 0 is the prompted one)
    assert sum(b.module == "memory_encoder" for b in batches) >= 3  # every frame writes one
    with torch.no_grad():
        replayed = memory_task(tiny_sam2, attn[-1])["output:memory_attention"]
    torch.testing.assert_close(replayed, seen[-1].float())
    student = prepare_qat(tiny_sam2, load_recipe("w8a8_video"))  # observers unset: a plain forward pass
    student.train()
    for b in (attn[0], next(b for b in batches if b.module == "memory_encoder")):
        out = memory_task(student, b)[f"output:{b.module}"]
        out.float().square().mean().backward()  # recorded tensors are not inference tensors
    grads = [p.grad for n, p in student.named_parameters() if n.startswith("memory_attention.layers.0")]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert isinstance(attn[0], MemoryBatch)
    assert len(attn[0]) == 1


@pytest.mark.slow
def test_cdpq_over_the_memory_path_keeps_steps_by_the_rule(tmp_path: Path) -> None:
    cfg = CDPQConfig(
        name="mem",
        image_size=128,
        target_roots=("memory_attention.layers.3", "memory_encoder"),  # 23 layers: enough to see the rule
        video=str(_clip(tmp_path / "clip", 3)),
        ladder=(8, 4),
        rounds=0,
        impact_threshold=0.02,
        threshold_growth=1.0,
        max_passes=1,
    )
    summary = run_cdpq(cfg, tmp_path / "runs", progress=False)
    run_dir = Path(summary["run_dir"])
    bits = summary["bits"]
    assert bits
    assert all(n.startswith(cfg.target_roots) for n in bits)
    assert any(n.startswith("memory_encoder") for n in bits)
    attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert attempts
    for a in attempts:  # kept exactly when the loss rose less than the threshold, rolled back otherwise
        assert a["accepted"] == (a["rise"] <= a["threshold"]), a
    last = {a["layer"]: a for a in attempts}
    for layer, a in last.items():
        assert bits[layer] == (a["bits"] if a["accepted"] else a["from_bits"]), (layer, a)
    recipe = load_recipe(run_dir / "recipe.yaml")
    assert set(recipe.targets) == set(cfg.target_roots)
    assert any(n.startswith("memory_attention.layers.3") for n in bits)
    from sam2_quant_plugin.sam2 import build_sam2_model

    fresh = build_sam2_model("sam2.1_hiera_t", image_size=128, seed=0)
    plans = {n: p for n, p in resolve(fresh, recipe).items() if p.quantized}
    assert {n: p.weight_bits for n, p in plans.items()} == bits  # the recipe says what the search chose
