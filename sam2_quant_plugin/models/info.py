"""What a model is (family, config, weights, seed, input size): one record on the model, one accessor.

Builders (:func:`sam2_quant_plugin.sam2.build_sam2_model`, a user's own) attach a :class:`ModelInfo`;
exporters, reports and manifests read it through :func:`model_info`. A model nobody described gets an
"unknown" record, so readers never need ``getattr`` on ad-hoc attributes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import nn

INFO_ATTR = "sam2_quant_info"


@dataclass(frozen=True)
class ModelInfo:
    """``family``: the adapter's name ('sam2', 'generic'); ``weights``: a checkpoint path or
    ``random-init(seed=N)``; ``seed``: the seed the random init used (None for loaded weights);
    ``image_size``: the square input side the model was built for (None when not an image model)."""

    family: str = "generic"
    config: str | None = None
    weights: str = "unknown"
    seed: int | None = None
    image_size: int | None = None

    @property
    def random_init(self) -> bool:
        return self.weights.startswith("random")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "random_init": self.random_init}


def set_model_info(model: nn.Module, info: ModelInfo | None = None, **changes: Any) -> nn.Module:
    """Attach ``info`` (or the current record with ``changes``) to ``model``; returns the model."""
    base = info if info is not None else model_info(model)
    object.__setattr__(model, INFO_ATTR, replace(base, **changes) if changes else base)
    return model


def model_info(model: nn.Module) -> ModelInfo:
    """The record a builder attached, else ``ModelInfo()`` (family 'generic', weights 'unknown')."""
    info = getattr(model, INFO_ATTR, None)
    return info if isinstance(info, ModelInfo) else ModelInfo()
