"""The selector syntax and precedence that layer rules and attention rules share.

A rule's ``match`` is an exact module name, ``re:<regex>`` (full match on the module name) or
``type:<ClassName>``. For one module, an exact rule wins over the first matching regex (anywhere in the
model), which wins over the first ``type:`` rule of its class; ``type:`` rules only reach modules under the
recipe's ``targets``. :class:`RuleSet` is that precedence, once, for both resolvers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Generic, Literal, TypeVar

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


def under(name: str, prefixes: Sequence[str]) -> bool:
    """Whether module ``name`` lies under one of ``prefixes`` (``""``: the whole model)."""
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


R = TypeVar("R", bound=Selects)


def duplicate_exact(rules: Iterable[Selects]) -> str | None:
    """The first module name that two exact rules select (the second would silently win), else None."""
    seen: set[str] = set()
    for rule in rules:
        if rule.kind == "exact" and rule.match in seen:
            return rule.match
        seen.add(rule.match)
    return None


class RuleSet(Generic[R]):
    """Rules split by kind, regexes compiled (an invalid one is listed in :attr:`problems`), and the
    precedence lookup; :attr:`used` collects the ``match`` of every rule that selected a module."""

    def __init__(self, rules: Iterable[R], targets: Sequence[str]) -> None:
        rules = list(rules)
        self.targets = tuple(targets)
        self.exact: dict[str, R] = {r.match: r for r in rules if r.kind == "exact"}
        self.types: list[R] = [r for r in rules if r.kind == "type"]
        self.regexes: list[tuple[R, re.Pattern[str]]] = []
        self.problems: list[str] = []
        for r in rules:
            if r.kind == "regex":
                try:
                    self.regexes.append((r, re.compile(r.pattern)))
                except re.error as e:
                    self.problems.append(f"{r.match!r}: invalid regex ({e})")
        self.used: set[str] = set()

    def select(self, name: str, type_name: str) -> R | None:
        """The rule that decides module ``name`` of class ``type_name`` (None: no rule reaches it)."""
        rule = self.exact.get(name)
        if rule is None:
            rule = next((r for r, rx in self.regexes if rx.fullmatch(name)), None)
        if rule is None and under(name, self.targets):
            rule = next((r for r in self.types if r.pattern == type_name), None)
        if rule is not None:
            self.used.add(rule.match)
        return rule

    def regex_problems(self, names: Iterable[str], *, matches_none: str, all_claimed: str) -> list[str]:
        """One line per regex that matches none of ``names``, or whose matches all went to other rules."""
        names = list(names)
        out = []
        for rule, rx in self.regexes:
            if not any(rx.fullmatch(n) for n in names):
                out.append(f"{rule.match!r}: {matches_none}")
            elif rule.match not in self.used:
                out.append(f"{rule.match!r}: {all_claimed}")
        return out
