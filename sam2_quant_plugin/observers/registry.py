"""Observers by registered name, the names recipes use (``observer: mse``)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import RecipeError

_OBSERVERS: dict[str, type] = {}


def register_observer(name: str) -> Callable[[type], type]:
    """Class decorator: make an observer class available to recipes under ``name``."""

    def deco(cls: type) -> type:
        if name in _OBSERVERS and _OBSERVERS[name] is not cls:
            raise ValueError(f"observer name {name!r} is already registered to {_OBSERVERS[name].__name__}")
        _OBSERVERS[name] = cls
        return cls

    return deco


def get_observer(name: str) -> type:
    try:
        return _OBSERVERS[name]
    except KeyError:
        raise RecipeError(
            f"observer {name!r} is not registered. Fix: use one of {sorted(_OBSERVERS)}"
        ) from None


def observer_names() -> list[str]:
    return sorted(_OBSERVERS)
