"""Everything a CDPQ run holds in memory: teacher, student, data, teacher cache, candidate layers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..device import describe, resolve_device
from ..gptq import HessianStats, collect_hessians
from ..models.registry import get_adapter
from .config import CDPQConfig
from .data import Batch, find_samples, shard
from .ddp import rank, world_size
from .features import matching_layers
from .student import prepare_student, weight_quantizers
from .task import Task
from .train import TeacherCache

log = logging.getLogger(__name__)


@dataclass
class Session:
    cfg: CDPQConfig
    teacher: nn.Module
    student: nn.Module
    task: Task
    train: list[Batch]
    val: list[Batch]
    cache: TeacherCache
    candidates: list[str]
    hessians: HessianStats | None = None  # rounding='gptq': inputs of the Linear candidates


def load_batches(cfg: CDPQConfig, teacher: nn.Module | None = None) -> tuple[list[Batch], list[Batch]]:
    """Training and validation batches from the model family's adapter; without ``val_images`` the
    training photos get fresh prompts (seed + 1). The adapter also gets the targets, the clip and the
    teacher (SAM 2 records the teacher's memory-path calls on the clip when a target needs them)."""
    adapter = get_adapter(cfg.model)
    kw: dict[str, object] = {
        "batch_size": cfg.batch_size,
        "n_points": cfg.points_per_image,
        "n_boxes": cfg.boxes_per_image,
    }
    kw.update(target_roots=cfg.target_roots, video=cfg.video, video_frames=cfg.video_frames, teacher=teacher)
    val_src = cfg.val_images if cfg.val_images is not None else cfg.train_images
    out = []
    for src, seed in ((cfg.train_images, cfg.seed), (val_src, cfg.seed + 1)):
        samples = find_samples(src)
        masks = [s.masks for s in samples] if any(s.masks for s in samples) else None
        paths = [s.image for s in samples]
        out.append(adapter.batches(paths, image_size=cfg.image_size, seed=seed, masks=masks, **kw))
    return out[0], out[1]


def build_session(
    cfg: CDPQConfig,
    *,
    task: Task | None = None,
    teacher: nn.Module | None = None,
    student_float: nn.Module | None = None,
    batches: tuple[list[Batch], list[Batch]] | None = None,
) -> Session:
    """Build (or take) the models, calibrate the student on the training batches, cache nothing yet.

    What is not given comes from the model family's adapter (``cfg.model``): the models
    (``adapter.build``), the batches (``adapter.batches``) and the task (``adapter.task()``).

    With identical teacher/student configs every quantized layer is distilled (stats/feature/affinity
    terms); otherwise only stage-level (encoder outputs) and output KD are used, and that is logged.
    """
    adapter = get_adapter(cfg.model)
    task = task if task is not None else adapter.task()
    device = resolve_device(cfg.device)
    log.info("CDPQ on %s", describe(device))

    def build(config: str, checkpoint: str | None) -> nn.Module:
        return adapter.build(config, checkpoint, image_size=cfg.image_size, seed=cfg.seed, device=device)

    if teacher is None:
        teacher = build(cfg.teacher_config, cfg.teacher_checkpoint)
    teacher = teacher.to(device)
    if student_float is None:
        if cfg.same_architecture and cfg.student_checkpoint in (None, cfg.teacher_checkpoint):
            student_float = teacher
        else:
            student_float = build(cfg.student_config, cfg.student_checkpoint)
    student_float = student_float.to(device)
    teacher.eval().requires_grad_(False)
    train, val = batches if batches is not None else load_batches(cfg, teacher)
    train = shard(train, rank(), world_size())
    init_bits = cfg.ladder[0]
    student = prepare_student(
        student_float,
        train,
        task,
        target_roots=cfg.target_roots,
        init_bits=init_bits,
        observer=cfg.observer,
        group_size=cfg.group_size,
        learn_bits=cfg.mode == "differentiable",
    )
    candidates = sorted(weight_quantizers(student), key=list(dict(student.named_modules())).index)
    hessians = _hessians(student, task, train, candidates) if cfg.rounding == "gptq" else None
    if cfg.same_architecture:
        layers = matching_layers(teacher, student, candidates)
        log.info(
            "teacher and student are both %s: layer-level KD on %d layers", cfg.student_config, len(layers)
        )
    else:
        layers = []
        log.warning(
            "teacher %s differs from student %s: only stage-level (encoder outputs) and output KD "
            "(mask logits, IoU) are used; layer statistics/feature/affinity terms are off",
            cfg.teacher_config,
            cfg.student_config,
        )
    log.info("%d candidate layers under %s", len(candidates), ", ".join(cfg.target_roots))
    cache = TeacherCache(teacher, task, layers, cfg.autocast)
    return Session(cfg, teacher, student, task, train, val, cache, candidates, hessians)


def _hessians(student: nn.Module, task: Task, batches: list[Batch], candidates: list[str]) -> HessianStats:
    """``sum(x x^T)`` of each Linear candidate's inputs over the training batches (the 8-bit student's)."""
    linears = [n for n in candidates if isinstance(student.get_submodule(n), nn.Linear)]
    with torch.no_grad(), collect_hessians(student, linears) as stats:
        for batch in batches:
            task(student, batch)
    log.info("GPTQ in the search: Hessians of %d Linear candidates (others keep the MSE refit)", len(linears))
    return stats
