"""Adapters by name, and the adapter of a given model.

Built-in families are registered by import path, so importing this module imports no model family:
``sam2`` is loaded the first time a SAM 2 model or the name is asked for. Users register their own
with :func:`register_adapter`. A model no family claims gets :class:`~.generic.GenericAdapter`.
"""

from __future__ import annotations

import importlib

from torch import nn

from ..errors import ModelConfigError
from .adapter import ModelAdapter
from .generic import GenericAdapter
from .info import model_info

#: family name -> "module:Class" of a built-in adapter (imported lazily)
BUILTIN = {"sam2": "sam2_quant_plugin.sam2.adapter:SAM2Adapter"}
#: family name -> attributes every model of that family has: the family's ``matches``, checked here too
#: before importing a built-in family (importing sam2 to turn down a resnet is wasted time)
SIGNATURES = {"sam2": ("image_encoder", "forward_image")}
_LOADED: dict[str, ModelAdapter] = {"generic": GenericAdapter()}


def register_adapter(adapter: ModelAdapter, *, replace: bool = False) -> ModelAdapter:
    """Make ``adapter`` known by ``adapter.name`` (an existing name needs ``replace=True``)."""
    if not isinstance(adapter, ModelAdapter):
        raise TypeError(f"{adapter!r} does not implement ModelAdapter (see sam2_quant_plugin.models.adapter)")
    if not replace and (adapter.name in _LOADED or adapter.name in BUILTIN):
        raise ValueError(f"an adapter named {adapter.name!r} exists; pass replace=True to replace it")
    _LOADED[adapter.name] = adapter
    return adapter


def adapter_names() -> list[str]:
    return sorted({*BUILTIN, *_LOADED})


def get_adapter(name: str) -> ModelAdapter:
    """The adapter registered as ``name``; unknown: a ModelConfigError listing the known."""
    if name not in _LOADED and name in BUILTIN:
        module, _, cls = BUILTIN[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), cls)()
    if name not in _LOADED:
        raise ModelConfigError(
            f"unknown model family {name!r}; known: {', '.join(adapter_names())}. Fix: pick one, or "
            "register yours with sam2_quant_plugin.models.register_adapter"
        )
    return _LOADED[name]


def adapter_for(model: nn.Module) -> ModelAdapter:
    """The adapter of ``model``: the family its :class:`ModelInfo` names, else the first that claims it,
    else the generic one."""
    family = model_info(model).family
    if family != "generic":
        return get_adapter(family)
    for name in adapter_names():
        if name == "generic":
            continue
        if name in _LOADED or has_signature(name, model):
            adapter = get_adapter(name)
            if adapter.matches(model):
                return adapter
    return _LOADED["generic"]


def has_signature(name: str, model: nn.Module) -> bool:
    """Whether ``model`` has every attribute of family ``name``'s signature (True without a signature)."""
    return all(hasattr(model, attr) for attr in SIGNATURES.get(name, ()))
