"""Check a spec's observer and ``observer_args`` by building the fake-quant exactly as ``prepare_qat`` will.

So a recipe with ``observer_args: {percentile: 150}`` or an unknown argument fails when it is loaded
(``inspect`` included), not minutes later in ``run``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ..errors import RecipeError

OBSERVERS_PKG = "sam2_quant_plugin.observers"  # the observer classes whose keyword arguments a fix names

if TYPE_CHECKING:
    from .schema import QuantSpec


def check_observer(spec: QuantSpec) -> None:
    """Raise :class:`RecipeError` when ``spec``'s observer is unknown or rejects its arguments."""
    key = _key(spec)
    if key is None:
        _build(spec)
    else:
        _cached(key, spec)


def _key(spec: QuantSpec) -> tuple[Any, ...] | None:
    try:
        args = tuple(sorted(spec.observer_args.items()))
        hash(args)
    except TypeError:  # unhashable argument values (lists): no cache
        return None
    s = spec
    return (s.observer, args, s.granularity, s.symmetric, s.narrow_range, s.bits, s.group_size)


_SEEN: set[tuple[Any, ...]] = set()  # specs already built without error


def _cached(key: tuple[Any, ...], spec: QuantSpec) -> None:
    if key not in _SEEN:
        _build(spec)
        _SEEN.add(key)


def _build(spec: QuantSpec) -> None:
    from ..observers.registry import get_observer
    from ..qconfig import make_fake_quant

    cls = get_observer(spec.observer)  # RecipeError naming the registered observers
    args = dict(spec.observer_args)
    try:
        make_fake_quant(spec)
    except RecipeError:
        raise
    except (TypeError, ValueError) as e:
        inits = [vars(c).get("__init__") for c in cls.__mro__ if c.__module__.startswith(OBSERVERS_PKG)]
        known = sorted(
            {
                n
                for init in inits
                if init is not None
                for n, p in inspect.signature(init).parameters.items()
                if p.kind == p.KEYWORD_ONLY
            }
        )
        raise RecipeError(
            f"observer {spec.observer!r} rejects observer_args {args}: {e}. Fix: use valid values; "
            f"{spec.observer!r} takes {known or 'no arguments'}."
        ) from None
