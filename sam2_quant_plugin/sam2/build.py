"""Build SAM 2.1 models (random-init or from a checkpoint), save checkpoints, and make image predictors."""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
import zipfile
from pathlib import Path

import torch
from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.modeling.sam.transformer import RoPEAttention
from sam2.sam2_image_predictor import SAM2ImagePredictor

from sam2_quant_plugin.errors import CheckpointError, ModelConfigError
from sam2_quant_plugin.io.atomic import atomic_write
from sam2_quant_plugin.models.info import ModelInfo, set_model_info
from sam2_quant_plugin.sam2.names import (
    CHECKPOINT_FILES,
    CONFIGS,
    SAM21_ONLY_KEYS,
    TRUNK_BLOCKS,
    config_short_name,
    trunk_size,
)

logger = logging.getLogger(__name__)

_SHOW_KEYS = 5


def _check_image_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 or image_size % 32:
        raise ModelConfigError(
            f"image_size must be a positive multiple of 32 (the image encoder's largest stride), "
            f"got {image_size!r}. Fix: use e.g. 1024 (SAM 2 default), 512 or 256."
        )
    return image_size


def _fix_rope_feat_sizes(model: torch.nn.Module, image_size: int, device: torch.device | str) -> int:
    """Recompute every RoPEAttention's rotary table for a ``image_size//16`` square feature map.

    SAM 2 does not keep ``feat_sizes``: ``RoPEAttention.__init__`` turns it into the complex tensor
    ``freqs_cis`` (a plain attribute, not a buffer) of ``feat_w*feat_h`` rows, and ``forward`` silently
    rebuilds it when the token count differs. Precomputing it here keeps forward free of that mutation.
    """
    side = image_size // 16
    count = 0
    for module in model.modules():
        if isinstance(module, RoPEAttention):
            module.freqs_cis = module.compute_cis(end_x=side, end_y=side).to(device)
            if hasattr(module, "_init_real_tables"):  # already patched by rope.patch_real_rope
                module._init_real_tables()
            count += 1
    return count


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(
            f"checkpoint file not found: {path}. Fix: check the path, or download the SAM 2.1 checkpoint "
            "(e.g. https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt)."
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}. Fix: pass the path of the .pt file.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if zipfile.is_zipfile(path):
            why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            fix = "re-save only the state_dict (tensors), e.g. with save_checkpoint()"
        else:
            why = "it is not a PyTorch zip archive (corrupt, truncated, or another format)"
            fix = "download it again or re-save it with save_checkpoint()"
        raise CheckpointError(f"cannot read checkpoint {path}: {why}. Fix: {fix}.") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors. Fix: pass a SAM 2 "
            "checkpoint ({'model': state_dict}) or a bare state_dict saved with torch.save."
        )
    state = obj["model"] if isinstance(obj.get("model"), dict) else obj
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not state:
        keys = ", ".join(map(repr, list(obj)[:_SHOW_KEYS]))
        raise CheckpointError(
            f"checkpoint {path} has no state_dict (top-level keys: {keys}). Fix: pass a SAM 2 checkpoint "
            "({'model': state_dict}) or a bare state_dict of tensors."
        )
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise CheckpointError(
            f"checkpoint {path} holds NaN/Inf values in {len(nonfinite)} tensor(s) (first: "
            f"{nonfinite[:_SHOW_KEYS]}). Fix: use an intact checkpoint; a diverged training run or a "
            "corrupt copy produces these."
        )
    return state


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, short: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{len(missing)} missing keys (first: {missing[:_SHOW_KEYS]})",
            f"{len(unexpected)} unexpected keys (first: {unexpected[:_SHOW_KEYS]})",
            f"{len(shapes)} shape mismatches (first: {shapes[:_SHOW_KEYS]})",
        ]
        raise CheckpointError(
            f"checkpoint {path} does not fit config {short!r}: "
            + "; ".join(parts)
            + f". {_diagnose(state, short)}"
        )
    model.load_state_dict(state, strict=True)


def _diagnose(state: dict[str, torch.Tensor], short: str) -> str:
    """What the checkpoint is, and the fix: a SAM 2.0 file, another size (by its trunk blocks), or unknown."""
    have, size = trunk_size(state)
    if not any(k in state for k in SAM21_ONLY_KEYS) and have is not None:
        want = size or short
        return (
            "It is a SAM 2 (2.0) checkpoint: it lacks the parameters SAM 2.1 added "
            f"({', '.join(SAM21_ONLY_KEYS)}). Fix: use the SAM 2.1 checkpoint {CHECKPOINT_FILES[want]} with "
            f"config {want}; this package builds SAM 2.1 models only."
        )
    if size is not None and size != short:
        return (
            f"Its image encoder has {TRUNK_BLOCKS[size]} Hiera blocks, as {size} has (not "
            f"{TRUNK_BLOCKS[short]}). Fix: pass --config {size} (config='{size}'), or the checkpoint made "
            f"for {short} ({CHECKPOINT_FILES[short]})."
        )
    return (
        "It is probably a checkpoint for another config. Fix: pass the matching config "
        f"({', '.join(CONFIGS)}; {short} expects {CHECKPOINT_FILES[short]}) or the checkpoint made for "
        f"{short}."
    )


def build_sam2_model(
    config: str = "sam2.1_hiera_t",
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 1024,
    seed: int = 0,
    device: str | torch.device = "cpu",
    video: bool = False,
) -> torch.nn.Module:
    """Build a SAM 2.1 model in eval mode.

    ``checkpoint=None`` gives random-init weights drawn with ``torch.manual_seed(seed)`` inside a forked RNG
    (the global RNG is left untouched) and logs a loud warning. ``video=True`` builds a
    ``SAM2VideoPredictor`` (same weights) instead of a ``SAM2Base``. ``image_size`` other than 1024 sets the
    hydra override and rebuilds memory-attention RoPE tables for ``image_size//16`` feature maps.
    """
    short = config_short_name(config)
    _check_image_size(image_size)
    # Read the checkpoint first: a bad path fails fast, before the (slower) model build.
    path = None if checkpoint is None else Path(checkpoint)
    state = None if path is None else _read_state_dict(path)
    overrides = [] if image_size == 1024 else [f"++model.image_size={image_size}"]
    builder = build_sam2_video_predictor if video else build_sam2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(CONFIGS[short], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides)

    if path is None or state is None:
        weights = f"random-init(seed={seed})"
        logger.warning(
            "\n%s\nRANDOM-INIT WEIGHTS (seed=%d): no checkpoint given; outputs are not meaningful "
            "segmentations (fine for tests and plumbing only). Fix: pass --checkpoint PATH (e.g. %s).\n%s",
            "!" * 100,
            seed,
            CHECKPOINT_FILES[short],
            "!" * 100,
        )
    else:
        _load_strict(model, state, path, short)
        del state
        weights = str(path)
        logger.info("loaded %s weights from %s", short, path)

    model = model.to(device).eval()
    if video:
        _skip_hole_filling_without_its_kernel(model, device)
    n_rope = _fix_rope_feat_sizes(model, image_size, device)
    logger.debug("set %d RoPEAttention tables to %dx%d", n_rope, image_size // 16, image_size // 16)
    info = ModelInfo("sam2", short, weights, seed if path is None else None, image_size)
    set_model_info(model, info)
    return model


def _skip_hole_filling_without_its_kernel(predictor: torch.nn.Module, device: str | torch.device) -> None:
    """SAM 2.1's video predictor fills small holes in each frame's masks with a compiled CUDA kernel
    (``sam2._C``, built only by a CUDA install of SAM 2). Where it cannot run (not built, or a CPU run) SAM 2
    catches the failure, leaves the masks as they were and warns "Skipping the post-processing step due to
    the error above". Turn the step off there instead: the same masks, without the alarming warning."""
    area = int(getattr(predictor, "fill_hole_area", 0))
    if area <= 0:
        return
    if torch.device(device).type == "cuda" and importlib.util.find_spec("sam2._C") is not None:
        return
    predictor.fill_hole_area = 0
    logger.info(
        "SAM 2's hole filling (fill_hole_area=%d) needs its CUDA kernel sam2._C on a GPU: off for this %s "
        "run, which leaves the masks as SAM 2 itself would when that kernel fails",
        area,
        torch.device(device).type,
    )


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``{"model": state_dict}`` (CPU tensors) to ``path`` atomically; never overwrites a file."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = atomic_write(path, lambda tmp: torch.save({"model": state}, tmp))
    logger.info("saved checkpoint (%d tensors) to %s", len(state), path)
    return path


def make_image_predictor(model: torch.nn.Module, **kwargs: object) -> SAM2ImagePredictor:
    """``SAM2ImagePredictor(model, **kwargs)`` with backbone feature sizes fixed for ``model.image_size``."""
    with warnings.catch_warnings():  # its SAM2Transforms uses torch.jit.script, deprecated in torch >= 2.10
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        predictor = SAM2ImagePredictor(model, **kwargs)
    size = int(model.image_size)
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return predictor
