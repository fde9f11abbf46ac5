"""Up-front checks of the onnxruntime commands (``infer``, ``track``, ``validate``, ``bench``): thread count,
execution provider and output names, before any model is built or any session opened.

Each raises a :class:`~sam2_quant_plugin.errors.Sam2QuantError` subclass whose message names the problem and
the fix; ``sam2-quant`` prints it as one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DeviceError
from .checks import check_writable


def check_threads(value: int | None, flag: str = "--threads") -> int | None:
    """``value`` when it is None or >= 0 (0 and None: onnxruntime's default), else a ConfigError."""
    if value is not None and value < 0:
        raise ConfigError(
            f"{flag} is {value}; it must be 0 (onnxruntime's default) or a positive thread count. "
            f"Fix: pass e.g. {flag} 2, or omit it."
        )
    return value


def check_provider(provider: str, flag: str = "--provider") -> str:
    """``provider`` when this onnxruntime has its execution provider, else a :class:`DeviceError`
    (as ``--device cuda`` without a GPU): asking for CUDA never silently runs on CPU."""
    from ..onnx.runtime import missing_provider_message

    msg = missing_provider_message(provider)
    if msg is not None:
        raise DeviceError(
            f"{flag} {provider}: {msg}. Fix: pass {flag} cpu, or install onnxruntime-gpu on a GPU machine."
        )
    return provider


def check_file_target(path: str | Path, flag: str) -> Path:
    """``path`` names a file (not a folder) whose folder is, or can become, a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder. Fix: pass a file path, e.g. {flag} {path / 'out.md'}.")
    check_writable(path.parent, flag=flag)
    return path


def free_prefix(base: Path, suffixes: tuple[str, ...]) -> Path:
    """``base``, or ``base_2``, ``base_3``, ... : the first prefix none of whose ``<prefix><suffix>`` files
    exists, so a default output name never refuses a second run (an explicit ``--out`` still does)."""
    n = 1
    prefix = base
    while any((f := prefix.with_name(prefix.name + s)).exists() or f.is_symlink() for s in suffixes):
        n += 1
        prefix = base.with_name(f"{base.name}_{n}")
    return prefix


def output_files(prefix: Path, suffixes: tuple[str, ...], flag: str = "--out") -> list[Path]:
    """The files ``<prefix><suffix>``, checked before the work: none exists, ``prefix`` is not a folder and
    its parent is (or can become) a writable folder. So a command writes all of them or none."""
    if prefix.is_dir():
        raise ConfigError(
            f"{flag} {prefix} is a folder; {flag} is a file prefix (it writes "
            f"{', '.join(prefix.name + s for s in suffixes)}). Fix: pass e.g. {flag} {prefix / 'mask'}."
        )
    probe = prefix.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"{flag} {prefix}: {probe} is a file, not a folder. Fix: pass a prefix inside a folder, "
            f"e.g. {flag} {probe.parent / 'masks' / prefix.name}."
        )
    check_writable(prefix.parent, flag=flag)
    files = [prefix.with_name(prefix.name + s) for s in suffixes]
    taken = [str(f) for f in files if f.exists() or f.is_symlink()]
    if taken:
        raise ConfigError(
            f"{', '.join(taken)} already exist(s); refusing to overwrite. Fix: pass a new {flag} prefix "
            "or delete the old files first."
        )
    return files
