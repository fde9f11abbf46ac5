"""Fake-quant modules: learnable bits for training, frozen for convert and export."""

from .frozen import FrozenFakeQuantize
from .learnable import LearnableBitFakeQuantize
from .regularizer import bit_cost, bit_penalty, learnable_bit_modules

__all__ = [
    "FrozenFakeQuantize",
    "LearnableBitFakeQuantize",
    "bit_cost",
    "bit_penalty",
    "learnable_bit_modules",
]
