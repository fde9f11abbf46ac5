"""A strict YAML reader for recipes: duplicate keys are errors, alias expansion is capped.

PyYAML's ``safe_load`` lets the last of two equal keys win silently, and expands nested aliases without
limit (a few hundred bytes can become tens of megabytes: "billion laughs").
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import RecipeError

MAX_RECIPE_BYTES = 4 << 20
#: nodes (plus 64-character chunks of strings) a recipe may expand to, aliases counted at every use
MAX_EXPANDED_NODES = 200_000


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base class reports it
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise RecipeError(
                    f"{self.name}: key {key!r} appears twice in one mapping (line {line}); YAML would "
                    "silently keep the last. Fix: remove or merge the duplicate."
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, limit: int) -> int:
    count, stack = 0, [node]
    while stack and count <= limit:
        n = stack.pop()
        count += 1
        if isinstance(n, yaml.ScalarNode):
            count += len(str(n.value)) // 64
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack += [k, v]
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return count


def safe_load_strict(text: str, name: str = "<recipe>") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and documents expanding past the cap."""
    loader = _StrictLoader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
            raise RecipeError(
                f"{name}: the YAML expands to more than {MAX_EXPANDED_NODES} nodes (nested aliases?); "
                "refusing to load it. Fix: write the rules out without nested anchors/aliases."
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
