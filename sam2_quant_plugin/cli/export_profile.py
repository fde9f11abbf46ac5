"""Export profiles (``export/profiles/*.yaml`` or a YAML path): read strictly, every key type-checked.

A profile is read with the recipe loader's strict YAML reader (duplicate keys and alias bombs refused), and
each value must have its key's type: ``fp16: "false"`` is a string, never read as false.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ExportError
from ..int8.safety import TARGET_CPUS
from ..recipe.yaml_strict import MAX_RECIPE_BYTES, safe_load_strict

# The package's ``profiles`` folder: a symlink to ``export/profiles`` in a checkout, real files in a wheel.
PROFILE_DIR = Path(str(resources.files("sam2_quant_plugin") / "profiles"))
#: key -> (what it must be, an example for the fix)
PROFILE_TYPES: dict[str, tuple[str, str]] = {
    "recipe": ("str", "recipe: w8a8"),
    "weight_format": ("str", "weight_format: int8"),
    "fp16": ("bool", "fp16: true"),
    "opset": ("int", "opset: 17"),
    "image_size": ("int", "image_size: 1024"),
    "multimask": ("bool", "multimask: false"),
    "target_cpu": ("str", "target_cpu: any"),
    "nbits_widths": ("ints", "nbits_widths: [2, 4, 8]"),
    "graphs": ("strs", "graphs: [memory_attention, memory_encoder]"),
    "description": ("str", "description: my profile"),
}
PROFILE_KEYS = set(PROFILE_TYPES)
_WHAT = {
    "str": "a string",
    "bool": "true or false (a YAML boolean, no quotes)",
    "int": "a whole number",
    "ints": "a list of whole numbers",
    "strs": "a list of names",
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return _is_int(value)
    if kind == "ints":
        return isinstance(value, list) and all(_is_int(v) for v in value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # strs


def _read(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise ExportError(
                f"export profile {path} is {path.stat().st_size / 1e6:.1f} MB, not a profile. Fix: pass a "
                "profile YAML file (a few lines: recipe, weight_format, opset, ...)."
            )
        return safe_load_strict(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        detail = " ".join(str(e).split())
        raise ExportError(
            f"export profile {path} cannot be read ({detail:.200}). Fix: make it valid YAML, a mapping of "
            f"keys {sorted(PROFILE_KEYS)}."
        ) from None


def check_profile(data: Any, path: Path) -> dict[str, Any]:
    """``data`` (a parsed profile) when every key is known and of its type; else :class:`ExportError`."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ExportError(
            f"export profile {path} must be a mapping of keys to values, got a YAML "
            f"{type(data).__name__} ({data!r:.60}). Fix: write one 'key: value' per line, e.g. "
            "'weight_format: int8'."
        )
    unknown = sorted(str(k) for k in set(data) - PROFILE_KEYS)
    if unknown:
        raise ExportError(
            f"export profile {path} has unknown keys {unknown}. Fix: remove them; allowed: "
            f"{sorted(PROFILE_KEYS)}"
        )
    for key, value in data.items():
        kind, example = PROFILE_TYPES[key]
        if value is None and key == "recipe":
            continue  # a float export
        if not _type_ok(value, kind):
            raise ExportError(
                f"export profile {path}: {key} must be {_WHAT[kind]}, got {value!r:.60}. "
                f"Fix: write e.g. '{example}'."
            )
    if data.get("target_cpu", "any") not in TARGET_CPUS:
        raise ExportError(
            f"export profile {path}: target_cpu {data['target_cpu']!r} is unknown. Fix: use one of "
            f"{TARGET_CPUS}."
        )
    if "graphs" in data:
        from ..sam2.export import VIDEO_GRAPHS

        bad = [g for g in data["graphs"] if g not in VIDEO_GRAPHS]
        if bad:
            raise ExportError(
                f"export profile {path}: graphs {bad} are unknown. Fix: list some of {list(VIDEO_GRAPHS)}."
            )
    return data


def load_profile(name: str | None) -> dict[str, object]:
    """The profile ``name`` (a YAML path or a shipped name), checked; ``{}`` for None."""
    if name is None:
        return {}
    path = Path(name)
    if not path.is_file():
        path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ExportError(f"export profile {name!r} not found. Fix: pass a YAML path or one of {known}")
    data = check_profile(_read(path), path)
    recipe = data.get("recipe")
    if isinstance(recipe, str) and recipe.endswith(".yaml") and not Path(recipe).is_absolute():
        data["recipe"] = str((path.parent / recipe).resolve())  # relative to the profile file
    return data
