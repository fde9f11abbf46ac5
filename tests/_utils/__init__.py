"""Shared helpers for the tests (tiny modules carrying real SAM 2 names)."""

from .tiny import TINY_LAYERS, make_tiny_sam2_like, tiny_input, torch_threads

__all__ = ["TINY_LAYERS", "make_tiny_sam2_like", "tiny_input", "torch_threads"]
