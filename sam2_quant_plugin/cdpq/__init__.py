"""CDPQ: distillation-driven progressive per-layer bit selection, and the learnable-bit objective.

A frozen float teacher distils into the prepared student; per-layer loss histories and sensitivities
order the layers; each is lowered one rung of a bit ladder at a time and kept only when the validation
loss rises by at most ``impact_threshold``. The result is a recipe the core loads, plus a quantized
package that converts back into a vanilla SAM 2 checkpoint.
"""

from .checkpoint import SearchState
from .confidence import get_heuristic, heuristics, order_candidates, register
from .config import CDPQConfig, LossWeights
from .data import find_images, sav_frames
from .features import FeatureCapture, matching_layers
from .losses import distill_loss, mask_kd
from .package import build_package, load_package, package_to_checkpoint, package_to_state_dict
from .run import load_config, run_cdpq
from .search import run_search
from .sensitivity import compute_sensitivity, importance_from
from .session import Session, build_session

__all__ = [
    "CDPQConfig",
    "FeatureCapture",
    "LossWeights",
    "SearchState",
    "Session",
    "build_package",
    "build_session",
    "compute_sensitivity",
    "distill_loss",
    "find_images",
    "get_heuristic",
    "heuristics",
    "importance_from",
    "load_config",
    "load_package",
    "mask_kd",
    "matching_layers",
    "order_candidates",
    "package_to_checkpoint",
    "package_to_state_dict",
    "register",
    "run_cdpq",
    "run_search",
    "sav_frames",
]
