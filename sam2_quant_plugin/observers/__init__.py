"""torch.ao observers over :mod:`sam2_quant_plugin.numerics`, available to recipes by name."""

from .base import RangeObserver
from .minmax import MinMaxRangeObserver
from .mse import MSEClipObserver
from .percentile import PercentileObserver
from .registry import get_observer, observer_names, register_observer

__all__ = [
    "MSEClipObserver",
    "MinMaxRangeObserver",
    "PercentileObserver",
    "RangeObserver",
    "get_observer",
    "observer_names",
    "register_observer",
]
