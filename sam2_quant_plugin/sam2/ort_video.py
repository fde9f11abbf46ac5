"""SAM 2's video predictor on an exported bundle: the image encoder, memory attention, memory encoder and,
when the bundle has it (``--graphs sam_mask_decoder``), the mask decoder run their files on onnxruntime; the
prompt encoder and the small heads (object pointers, mask downsampling) run in torch.

The bundle's image encoder graph is the image predictor's (``image -> image_embed, high_res_feats_0,
high_res_feats_1``), which is the video predictor's ``forward_image`` output up to one known step: the
no-memory embedding SAM 2 adds to the lowest-resolution level for single images. :class:`OrtForwardImage`
takes it off again and recomputes the positional encodings (they depend on shapes only), so one encoder
file serves both predictors. The torch parts are the bundle's own float model, rebuilt from its manifest
(checkpoint or seed), as ``validate`` rebuilds its reference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import Tensor, nn

from ..errors import BundleError
from ..io.bundle import bundle_files, read_manifest, reference_checkpoint, reference_seed
from ..onnx.runtime import make_session
from .export import MEMORY_GRAPHS, VIDEO_GRAPHS
from .graphs import ENCODER_INPUTS, ENCODER_OUTPUTS
from .ort_modules import check_inputs, install_drop_ins, to_numpy, to_torch
from .video import blank_video_predictor

log = logging.getLogger(__name__)


class OrtForwardImage(nn.Module):
    """Stands in for ``SAM2Base.forward_image``: the bundle's encoder graph, the no-memory embedding taken
    back off its ``image_embed``, positional encodings from ``position_encoding``."""

    def __init__(
        self, session: ort.InferenceSession, position_encoding: nn.Module, no_mem_embed: Tensor | None
    ) -> None:
        super().__init__()
        check_inputs(session, ENCODER_INPUTS, "encoder")
        outputs = tuple(o.name for o in session.get_outputs())
        if outputs != ENCODER_OUTPUTS:
            raise BundleError(
                f"the encoder file returns {outputs}, not {ENCODER_OUTPUTS}: not this package's"
            )
        self.session = session
        self.position_encoding = position_encoding
        self.no_mem_embed = no_mem_embed  # [1, 1, C] or None (configs that do not add it)

    def forward(self, img_batch: Tensor) -> dict[str, Any]:
        levels = []
        for b in range(img_batch.shape[0]):  # the file is exported for batch 1
            out = self.session.run(None, {ENCODER_INPUTS[0]: to_numpy(img_batch[b : b + 1])})
            levels.append([to_torch(o, img_batch) for o in out])
        embed, hr0, hr1 = (torch.cat(parts) for parts in zip(*levels))
        if self.no_mem_embed is not None:
            embed = embed - self.no_mem_embed.reshape(1, -1, 1, 1).to(embed)
        fpn = [hr0, hr1, embed]
        pos = [self.position_encoding(f).to(f.dtype) for f in fpn]
        return {"vision_features": embed, "vision_pos_enc": pos, "backbone_fpn": fpn}


def video_predictor_on_files(
    model: nn.Module,
    encoder: Path,
    memory_attention: Path,
    memory_encoder: Path,
    *,
    mask_decoder: Path | None = None,
    provider: str = "cpu",
    threads: int | None = None,
    wrong_cpu: str = "warn",
) -> Any:
    """A ``SAM2VideoPredictor`` holding ``model``'s float weights whose encoder, memory attention, memory
    encoder and (given ``mask_decoder``) mask decoder run the files on onnxruntime (``provider`` 'cpu' |
    'cuda'). ``wrong_cpu``: :func:`~sam2_quant_plugin.onnx.runtime.make_session`'s guard for a VNNI-only file
    on a CPU whose int8 kernels saturate ('warn' | 'error')."""
    if not getattr(model, "use_high_res_features_in_sam", False):
        raise BundleError("the encoder graph carries high-resolution features: this config does not use them")
    vp: Any = blank_video_predictor(model)  # SAM2VideoPredictor (untyped)
    vp.load_state_dict(model.state_dict(), strict=True)

    def session(path: Path) -> ort.InferenceSession:
        return make_session(path, provider, threads, wrong_cpu=wrong_cpu)

    no_mem = vp.no_mem_embed.detach() if vp.directly_add_no_mem_embed else None
    ort_image = OrtForwardImage(session(encoder), vp.image_encoder.neck.position_encoding, no_mem)
    vp.ort_forward_image = ort_image  # registered, so the predictor lists it
    object.__setattr__(vp, "forward_image", ort_image)  # the instance attribute shadows SAM2Base's method
    vp.image_encoder = nn.Identity()  # never called: forward_image is the file
    files = {"memory_attention": memory_attention, "memory_encoder": memory_encoder}
    if mask_decoder is not None:
        files["sam_mask_decoder"] = mask_decoder
    install_drop_ins(vp, {name: session(path) for name, path in files.items()})
    return vp.eval()


def onnx_video_predictor(
    bundle_dir: str | Path,
    *,
    checkpoint: str | None = None,
    provider: str = "cpu",
    threads: int | None = None,
    wrong_cpu: str = "error",
) -> Any:
    """SAM 2's video predictor on a bundle written by ``sam2-quant export --graphs memory_attention
    memory_encoder [sam_mask_decoder]``: use it as ``SAM2VideoPredictor`` (``init_state``,
    ``add_new_points_or_box``, ``propagate_in_video``).

    The float model for the torch parts is rebuilt from the manifest: ``checkpoint`` names the file when the
    bundle was exported from one (its path in the manifest is a label, never opened). A bundle exported
    for VNNI CPUs whose int8 layers can saturate is refused on a CPU without VNNI (:class:`Int8Error`;
    ``wrong_cpu='warn'`` runs it anyway, with a warning).
    """
    from .build import build_sam2_model

    d = Path(bundle_dir)
    manifest = read_manifest(d)
    missing = [g for g in MEMORY_GRAPHS if g not in manifest["files"]]
    if missing:
        raise BundleError(
            f"bundle {d} has no {' / '.join(missing)} graph (files: {sorted(manifest['files'])}). Fix: "
            "export it with --graphs memory_attention memory_encoder."
        )
    present = [g for g in VIDEO_GRAPHS if g in manifest["files"]]
    files = bundle_files(d, manifest, ["encoder", *present])
    if manifest.get("family", "sam2") != "sam2":
        raise BundleError(f"bundle {d} holds a {manifest['family']!r} model, not SAM 2")
    model = build_sam2_model(
        manifest["config"],
        reference_checkpoint(manifest, checkpoint),
        image_size=int(manifest["image_size"]),
        seed=reference_seed(manifest),
    )
    targets = set((manifest.get("recipe_spec") or {}).get("targets") or ())
    torch_side = sorted(targets - {"image_encoder", *present})
    if torch_side:
        log.warning(
            "recipe %r also quantizes %s; the video predictor runs those modules in torch at float precision",
            manifest.get("recipe"),
            ", ".join(torch_side),
        )
    if manifest.get("random_init"):
        log.warning(
            "!!! bundle weights are RANDOM INIT (%s): masks are not segmentations !!!", manifest["weights"]
        )
    return video_predictor_on_files(
        model,
        files["encoder"],
        files["memory_attention"],
        files["memory_encoder"],
        mask_decoder=files.get("sam_mask_decoder"),
        provider=provider,
        threads=threads,
        wrong_cpu=wrong_cpu,
    )
