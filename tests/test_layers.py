"""The import rules of docs/ARCHITECTURE.md, checked on the source (no import is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sam2_quant_plugin"
#: model families and applications; everything else is generic and must not reach them
FAMILY = ("sam2",)
APPS = ("cli", "eval")
FACADE = PKG / "__init__.py"


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    """Absolute dotted names of everything ``path`` imports (relative imports resolved)."""
    here = ["sam2_quant_plugin", *path.relative_to(PKG).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1]
    else:
        here = here[:-1]  # the module's package
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = here[: len(here) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def _reaches(name: str, pkg: str) -> bool:
    return name == f"sam2_quant_plugin.{pkg}" or name.startswith(f"sam2_quant_plugin.{pkg}.")


GENERIC = [p for p in _modules() if p != FACADE and _package_of(p) not in (*FAMILY, *APPS)]


def test_the_scan_sees_the_package() -> None:
    names = {_package_of(p) for p in GENERIC}
    assert {"api", "calibrate", "onnx", "cdpq", "int8", "models", "recipe"} <= names
    assert _imports(PKG / "onnx" / "export.py"), "the import scan found nothing: it is broken"


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(PKG)))
def test_generic_code_imports_no_model_family_and_no_app(path: Path) -> None:
    bad = [
        n
        for n in _imports(path)
        if n == "sam2" or n.startswith("sam2.") or any(_reaches(n, p) for p in (*FAMILY, *APPS))
    ]
    assert not bad, f"{path.relative_to(PKG)} imports {bad}: generic code reaches SAM 2 through its adapter"


def test_model_facts_are_read_through_model_info() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in _modules()
        if any(
            a in p.read_text() for a in ("sam2_quant_weights", "sam2_quant_config", "sam2_quant_image_size")
        )
    ]
    assert not offenders, f"read ModelInfo through sam2_quant_plugin.models.model_info instead: {offenders}"


def test_only_the_adapter_module_imports_torch_ao() -> None:
    users = sorted(
        str(p.relative_to(PKG)) for p in _modules() if any(n.startswith("torch.ao") for n in _imports(p))
    )
    assert users == ["torchao_adapter.py"], users


def test_families_are_registered_lazily() -> None:
    """Importing the registry must not import a family: only its ``module:Class`` path is named."""
    from sam2_quant_plugin.models.registry import BUILTIN

    assert BUILTIN["sam2"] == "sam2_quant_plugin.sam2.adapter:SAM2Adapter"
    assert not any(_reaches(n, "sam2") for n in _imports(PKG / "models" / "registry.py"))
