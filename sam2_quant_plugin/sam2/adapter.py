"""SAM 2 as a model family: the one place generic layers reach SAM 2 through (``get_adapter("sam2")``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelConfigError
from ..models.adapter import ForwardLoop, GraphSpec, ModelAdapter, Task
from ..models.info import ModelInfo, model_info
from ..models.registry import has_signature
from .forward import model_image_size


class SAM2Adapter:
    """SAM 2 / 2.1 (``sam2`` package): image encoder + prompt encoder + mask decoder (+ memory for video).

    Bundles hold ``encoder`` and ``decoder`` graphs, plus the video graphs on request (:meth:`target_graphs`
    names those a recipe's targets need); calibration runs photos through the encoder and a point grid
    through the decoder; CDPQ distils encoder features and the masks of seeded prompts.
    """

    name = "sam2"

    def matches(self, model: nn.Module) -> bool:
        return has_signature(self.name, model)

    def build(
        self,
        config: str,
        checkpoint: str | Path | None,
        *,
        image_size: int | None,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> nn.Module:
        from .build import build_sam2_model

        return build_sam2_model(config, checkpoint, image_size=image_size or 1024, seed=seed, device=device)

    def info(self, model: nn.Module) -> ModelInfo:
        info = model_info(model)
        if info.family == "generic":  # a SAM 2 built by sam2's own builder
            size = getattr(model, "image_size", None)
            info = ModelInfo("sam2", None, info.weights, None, int(size) if size is not None else None)
        return info

    def default_targets(self) -> tuple[str, ...]:
        return ("image_encoder",)

    def image_size(self, model: nn.Module, image_size: int | None = None) -> int:
        return int(image_size or model_image_size(model))

    def forward_loop(self, images: Any, *, plans: Sequence[str], **kw: Any) -> ForwardLoop:
        from .calibration import default_forward_loop, needs_decoder
        from .video import runs_video, video_forward_loop

        clip = kw.pop("video", None)  # a frame folder: the video path over the user's clip
        photos = default_forward_loop(images, decode_prompts=needs_decoder(plans), **kw)
        if clip is None and not runs_video(plans):
            return photos
        video = video_forward_loop(clip)  # memory layers only run on the video path (default: bundled clip)

        def both(model: nn.Module) -> None:
            photos(model)
            video(model)

        return both

    def graphs(self, model: nn.Module, *, image_size: int | None, **kw: Any) -> dict[str, GraphSpec]:
        from .export import bundle_memory_specs, decoder_spec, encoder_spec

        size = self.image_size(model, image_size)
        specs = {
            "encoder": encoder_spec(size),
            "decoder": decoder_spec(size, bool(kw.get("multimask", False))),
        }
        return {**specs, **bundle_memory_specs(size, tuple(kw.get("extra", ())))}

    def target_graphs(self, targets: Sequence[str]) -> tuple[str, ...]:
        """``memory_attention`` / ``memory_encoder`` (in that order) for each such module a target reaches:
        the module itself, a part of it (``memory_attention.layers.0``) or a prefix holding it (``""``, the
        whole model); then ``sam_mask_decoder`` (the video loop's decoder graph) when a video recipe also
        reaches the mask decoder, so the loop runs the quantized decoder, not a float copy. Encoder and
        decoder are in every bundle."""
        from .export import MEMORY_GRAPHS

        def reaches(target: str, root: str) -> bool:
            return target in ("", root) or target.startswith(root + ".") or root.startswith(target + ".")

        memory = tuple(g for g in MEMORY_GRAPHS if any(reaches(t, g) for t in targets))
        decoder = any(reaches(t, "sam_mask_decoder") for t in targets)
        return (*memory, "sam_mask_decoder") if memory and decoder else memory

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
        from .parity import pipeline_parity

        size = self.image_size(model, image_size)
        return pipeline_parity(
            model,
            files["encoder"],
            files.get("decoder"),
            images,
            image_size=size,
            optimization=optimization,
            **kw,
        )

    def extra_parity(
        self, model: nn.Module, files: Mapping[str, Path], *, optimization: str = "all", **kw: Any
    ) -> dict[str, dict[str, float | int | str]]:
        """The video graphs of ``files`` (memory graphs, ``sam_mask_decoder``) inside SAM 2's video loop vs
        ``model`` (:func:`.parity.video_parity`) on ``kw['video']`` (default: the bundled clip), with its
        ``max_frames`` and ``threads`` when given; ``{}`` without video graphs."""
        from .export import VIDEO_GRAPHS
        from .parity import video_parity
        from .video import default_video_dir

        if not any(g in files for g in VIDEO_GRAPHS):
            return {}
        clip = kw.get("video") or default_video_dir()
        opts = {k: kw[k] for k in ("max_frames", "threads") if kw.get(k) is not None}
        return {"video": video_parity(model, files, clip, optimization=optimization, **opts)}

    def check_graph(self, proto: Any, path: Path, key: str, manifest: Mapping[str, Any]) -> None:
        """A bundle file is the graph its manifest entry names; the encoder's trunk is the config's."""
        from .bundle_checks import check_graph

        check_graph(proto, path, key, manifest)

    def manifest_problems(self, manifest: Mapping[str, Any]) -> list[str]:
        """What is wrong with a SAM 2 manifest's own fields (an unknown config)."""
        from .bundle_checks import manifest_problems

        return manifest_problems(manifest)

    def fidelity(
        self,
        teacher: nn.Module,
        student: nn.Module,
        images: Sequence[Any],
        *,
        image_size: int | None,
        **kw: Any,
    ) -> dict[str, float]:
        """Point-prompt mask IoU (degenerate teacher masks excluded) and embedding cosine, one flat dict."""
        from ..eval.harness import build_reference, score_student

        size = self.image_size(teacher, image_size)
        pps = int(kw.get("points_per_side", 8))
        ref = build_reference(teacher, images, image_size=size, points_per_side=pps, progress=False)
        score = score_student(ref, student, teacher, progress=False)
        return {"embed_cosine": score["embed_cosine"], **score["points"]}

    def batches(self, paths: Sequence[Path], *, image_size: int | None, seed: int, **kw: Any) -> list[Any]:
        """Prompted photo batches for targets on the image path; for memory attention / memory encoder
        targets also the teacher's recorded calls on the clip (``video``, default the bundled clip), with
        ``2 + seed % 2`` points per side so training (seed) and validation (seed + 1) see other objects."""
        from .batches import make_batches
        from .memory_batches import record_memory_batches, unreplayed_roots
        from .video import default_video_dir, runs_video

        roots = tuple(kw.pop("target_roots", None) or self.default_targets())
        video, n_frames, teacher = (
            kw.pop("video", None),
            kw.pop("video_frames", None),
            kw.pop("teacher", None),
        )
        out: list[Any] = []
        if not all(runs_video((r,)) for r in roots):
            out += make_batches(list(paths), image_size or 1024, seed=seed, **kw)
        if runs_video(roots):
            bad = unreplayed_roots(roots)
            if bad:
                raise ModelConfigError(
                    f"CDPQ cannot distil {bad}: only memory_attention and memory_encoder calls are recorded "
                    "from the video path. Fix: target those (or image_encoder / sam_mask_decoder)."
                )
            if teacher is None:
                raise ModelConfigError(
                    "memory-path targets need the float teacher to record its memory calls. Fix: pass "
                    "teacher=... to the adapter's batches (build_session does)."
                )
            clip = video if video is not None else default_video_dir()
            out += record_memory_batches(teacher, clip, n_per_side=2 + seed % 2, max_frames=n_frames)
        return out

    def task(self) -> Task:
        from .task import sam2_task

        return sam2_task


def _implements_protocol(adapter: SAM2Adapter) -> ModelAdapter:
    return adapter  # mypy checks here that SAM2Adapter satisfies ModelAdapter
