"""Segment photos with a bundle's ``encoder.onnx`` + ``decoder.onnx`` on onnxruntime: ``SAM2ImagePredictor``'s
``set_image`` / ``predict`` for deployment, with no torch model built (``sam2-quant infer`` runs on it).

Pre- and post-processing are SAM 2's own (``SAM2Transforms``: antialiased resize and ImageNet
normalisation in; bilinear upsampling of the low-resolution logits to the photo out), so a float bundle
gives the masks the torch predictor gives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BundleError, DataError
from ..io.bundle import bundle_files
from ..onnx.pipeline import read_manifest
from ..onnx.runtime import make_session
from .preprocess import load_image, to_model_input

log = logging.getLogger(__name__)
FEATURES = ("image_embed", "high_res_feats_0", "high_res_feats_1")


@dataclass(frozen=True)
class Prediction:
    """One prompt's result: ``masks`` ``[K, H, W]`` bool at the photo's size, ``scores`` ``[K]`` (the
    decoder's predicted IoU), ``logits`` ``[K, h, w]`` at the decoder's resolution; K = the graph's outputs
    (1, or 3 for a bundle exported with multimask)."""

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray

    @property
    def best(self) -> np.ndarray:
        """The mask with the highest predicted IoU, ``[H, W]`` bool."""
        return self.masks[int(np.argmax(self.scores))]


class OnnxImagePredictor:
    """``set_image(photo)`` once, then ``predict(points=..., labels=..., box=...)`` per prompt.

    ``bundle_dir`` is a folder written by ``sam2-quant export`` (or :func:`sam2_quant_plugin.export_onnx`);
    ``fp16`` uses its ``*_fp16`` graphs. A file exported for VNNI CPUs whose int8 layers can saturate is
    refused on a CPU without VNNI (:class:`~sam2_quant_plugin.errors.Int8Error`); ``wrong_cpu='warn'`` runs
    it anyway, with a warning.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        *,
        provider: str = "cpu",
        fp16: bool = False,
        threads: int | None = None,
        wrong_cpu: str = "error",
    ) -> None:
        d = Path(bundle_dir)
        manifest = read_manifest(d)
        suffix = "_fp16" if fp16 else ""
        if f"encoder{suffix}" not in manifest["files"]:
            raise BundleError(
                f"fp16: bundle {d} has no fp16 graphs (files: {sorted(manifest['files'])}). Fix: drop "
                "fp16 (--fp16), or export again with --fp16 (float or weight-only recipes)."
            )
        files = bundle_files(d, manifest, [f"encoder{suffix}", f"decoder{suffix}"])
        self.image_size = int(manifest["image_size"])
        self.random_init = bool(manifest.get("random_init"))
        self.weights = str(manifest.get("weights"))
        self._encoder = make_session(files[f"encoder{suffix}"], provider, threads, wrong_cpu=wrong_cpu)
        self._decoder = make_session(files[f"decoder{suffix}"], provider, threads, wrong_cpu=wrong_cpu)
        self._features: dict[str, np.ndarray] | None = None
        self._hw: tuple[int, int] = (0, 0)
        if self.random_init:
            log.warning(
                "!!! bundle weights are RANDOM INIT (%s): masks are not segmentations !!!", self.weights
            )

    def set_image(self, image: np.ndarray | str | Path) -> None:
        """Encode a photo (an ``HxWx3`` uint8 RGB array, or a path read upright with its EXIF orientation)."""
        img = load_image(image) if isinstance(image, (str, Path)) else image
        x = to_model_input([img], self.image_size).numpy()
        self._features = dict(zip(FEATURES, self._encoder.run(None, {"image": x}), strict=True))
        self._hw = (int(img.shape[0]), int(img.shape[1]))

    def predict(
        self,
        points: Sequence[Sequence[float]] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        box: Sequence[float] | np.ndarray | None = None,
    ) -> Prediction:
        """Masks for point prompts (``points`` ``[N, 2]`` x, y in photo pixels; ``labels`` 1 foreground,
        0 background, default all 1) and/or a ``box`` (x0, y0, x1, y1 in photo pixels)."""
        if self._features is None:
            raise DataError("predict() before set_image(). Fix: call set_image(photo) first.")
        coords, codes = self._prompts(points, labels, box)
        masks, scores = self._decoder.run(
            None, {**self._features, "point_coords": coords, "point_labels": codes}
        )
        logits = torch.from_numpy(np.ascontiguousarray(masks[0]))[None]
        full = F.interpolate(logits, size=self._hw, mode="bilinear", align_corners=False)[0]
        return Prediction(masks=(full > 0).numpy(), scores=np.asarray(scores[0]), logits=masks[0])

    def _prompts(
        self,
        points: Sequence[Sequence[float]] | np.ndarray | None,
        labels: Sequence[int] | np.ndarray | None,
        box: Sequence[float] | np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coords ``[1, N, 2]`` in model-input pixels and labels ``[1, N]``; a box is two corner points
        (labels 2, 3) placed first, as ``SAM2ImagePredictor`` places them."""
        h, w = self._hw
        pts = (
            np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32).reshape(-1, 2)
        )
        lab = np.ones(len(pts), np.int32) if labels is None else np.asarray(labels, np.int32).reshape(-1)
        if len(lab) != len(pts):
            raise DataError(f"{len(pts)} point(s) but {len(lab)} label(s). Fix: give one label per point.")
        if box is not None:
            corners = np.asarray(box, np.float32).reshape(2, 2)
            pts, lab = np.concatenate([corners, pts]), np.concatenate([np.array([2, 3], np.int32), lab])
        if not len(pts):
            raise DataError("no prompt given. Fix: pass points (with labels) and/or a box.")
        if not np.isfinite(pts).all():
            raise DataError(
                f"prompt coordinates must be finite, got {pts.tolist()}. Fix: pass pixel positions."
            )
        scale = np.array([self.image_size / w, self.image_size / h], np.float32)
        return (pts * scale)[None], lab[None]
