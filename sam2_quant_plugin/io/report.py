"""The one report writer: Markdown tables, and a run's results written as JSON + Markdown side by side.

Every command that reports a table (run, validate, bench, eval) and the scripts in ``benchmarks/`` build
their tables with :func:`md_table` and write their files with :func:`write_results`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, atomic_write_text


def md_row(cells: Iterable[object]) -> str:
    """One Markdown table line: ``| a | b |`` (cells already formatted; ``str`` applied)."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]] = ()) -> list[str]:
    """A Markdown table as lines: the header, the ``|---|`` separator, one line per row."""
    return [md_row(headers), "|" + "---|" * len(headers), *(md_row(r) for r in rows)]


def write_results(
    json_path: str | Path,
    result: Any,
    md_path: str | Path,
    markdown: str,
    *,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``result`` as JSON and ``markdown`` beside it, each atomically (JSON first); returns the paths.

    Without ``overwrite`` an existing file raises :class:`FileExistsError` (run folders never overwrite).
    """
    return {
        "json": atomic_write_json(json_path, result, overwrite=overwrite),
        "md": atomic_write_text(md_path, markdown, overwrite=overwrite),
    }
