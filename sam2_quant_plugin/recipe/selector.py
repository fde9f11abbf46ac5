"""The selector syntax layer rules and attention rules share: an exact module name, ``re:<regex>`` (full
match on the module name) or ``type:<ClassName>``."""

from __future__ import annotations

from typing import Literal

SelectorKind = Literal["exact", "regex", "type"]


def selector_kind(match: str) -> SelectorKind:
    if match.startswith("re:"):
        return "regex"
    if match.startswith("type:"):
        return "type"
    return "exact"


def selector_pattern(match: str) -> str:
    """The regex or class name after the prefix; an exact name as it is."""
    return match.split(":", 1)[1] if selector_kind(match) != "exact" else match


class Selects:
    """Mixin of a rule with a ``match`` selector: its kind and its pattern."""

    match: str

    @property
    def kind(self) -> SelectorKind:
        return selector_kind(self.match)

    @property
    def pattern(self) -> str:
        return selector_pattern(self.match)
