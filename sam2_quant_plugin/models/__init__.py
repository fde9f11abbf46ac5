"""Model families behind one seam: :class:`ModelAdapter`, :class:`ModelInfo` and the adapter registry."""

from .adapter import GraphSpec, ModelAdapter
from .generic import GenericAdapter, output_task
from .info import ModelInfo, model_info, set_model_info
from .registry import adapter_for, adapter_names, get_adapter, register_adapter

__all__ = [
    "GenericAdapter",
    "GraphSpec",
    "ModelAdapter",
    "ModelInfo",
    "adapter_for",
    "adapter_names",
    "get_adapter",
    "model_info",
    "output_task",
    "register_adapter",
    "set_model_info",
]
