"""The one report writer: Markdown tables and results JSON + Markdown written side by side (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam2_quant_plugin.io.report import md_row, md_table, write_results


def test_md_table_lines() -> None:
    assert md_table(("a", "b"), [(1, "x"), ("", 2.5)]) == [
        "| a | b |",
        "|---|---|",
        "| 1 | x |",
        "|  | 2.5 |",
    ]
    assert md_table(["only"]) == ["| only |", "|---|"]
    assert md_row([]) == "|  |"


def test_write_results_never_overwrites(tmp_path: Path) -> None:
    paths = write_results(tmp_path / "r.json", {"x": 1}, tmp_path / "r.md", "# r\n")
    assert json.loads(paths["json"].read_text()) == {"x": 1}
    assert paths["md"].read_text() == "# r\n"
    with pytest.raises(FileExistsError):
        write_results(tmp_path / "r.json", {}, tmp_path / "other.md", "")
    assert not (tmp_path / "other.md").exists()  # the JSON comes first: nothing half-written
    write_results(tmp_path / "r.json", {"x": 2}, tmp_path / "r.md", "# 2\n", overwrite=True)
    assert (tmp_path / "r.md").read_text() == "# 2\n"
