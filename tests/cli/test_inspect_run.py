"""The CLI as a user meets it: tables, the main job, and one clear line (exit 2) for bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sam2_quant_plugin.cli.main import main


def test_inspect_prints_resolved_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "mixed"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("image_encoder.trunk.blocks.0.attn.qkv "))
    assert row.split()[1:5] == ["Linear", "8", "float", "27,936"]  # exact rule beats the qkv regex
    mlp = next(
        line for line in out.splitlines() if line.startswith("image_encoder.trunk.blocks.3.mlp.layers.0")
    )
    assert mlp.split()[2] == "4"
    assert "layers quantized" in out
    assert main(["inspect", "w4_g32"]) == 0
    qkv = next(line for line in capsys.readouterr().out.splitlines() if ".blocks.0.attn.qkv " in line)
    assert qkv.split()[2:4] == ["4", "g32"]  # per-group weight scales are marked


def test_inspect_json_totals_match_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "w4a8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["layers"]
    assert len(rows) == 56  # 51 Linear + 5 Conv2d in tiny's image encoder
    avg = sum(r["weight_params"] * r["w_bits"] for r in rows) / sum(r["weight_params"] for r in rows)
    assert data["totals"]["avg_weight_bits"] == pytest.approx(avg)
    assert all(r["weight_params"] < r["params"] for r in rows)  # every layer has a bias, counted apart
    assert {r["w_bits"] for r in rows if r["type"] == "Conv2d"} == {8}


def test_inspect_all_lists_float_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "w8a8", "--all"]) == 0
    out = capsys.readouterr().out
    assert "sam_mask_decoder.transformer.layers.0.self_attn.q_proj" in out
    assert "(no rule)" in out


def test_inspect_list_names_shipped_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("w8a8", "w8_weight_only", "w4a8", "mixed", "learnable"):
        assert f"sam2.1_hiera_t/{name} " in out


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        (
            "version: 1\nname: r\nrules:\n  - match: image_encoder.nope\n    weight: {bits: 8}\n",
            "image_encoder.nope",
        ),
        ("version: 1\nname: r\nrules:\n  - match: 're:.*zzz.*'\n    weight: {bits: 8}\n", "re:.*zzz.*"),
        ("version: 1\nname: r\ndefault:\n  weight: {bits: 9}\n", "bits=9"),
        ("version: 1\nname: r\ndefault:\n  weight: {bitz: 4}\n", "bitz"),
        (  # the 7x7 patch embedding has 147 inputs per channel: no whole groups of 32
            "version: 1\nname: r\ndefault:\n  weight: {bits: 4, granularity: per_group}\n",
            "'image_encoder.trunk.patch_embed.proj' (matched by default): per_group",
        ),
    ],
)
def test_bad_recipe_exits_2_naming_the_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, yaml_text: str, needle: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with caplog.at_level(logging.ERROR):
        assert main(["inspect", str(path)]) == 2
    assert needle in caplog.text


def test_unknown_recipe_and_config_exit_2(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["inspect", "no_such_recipe"]) == 2
        assert "Shipped:" in caplog.text
        assert main(["inspect", "w8a8", "--config", "sam2.1_hiera_xl"]) == 2
        assert "sam2.1_hiera_t" in caplog.text


def test_run_missing_checkpoint_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nope.pt"
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--checkpoint", str(missing), "--out", str(tmp_path), "--no-export"]) == 2
    assert str(missing) in caplog.text


@pytest.mark.slow
def test_run_main_job_writes_fresh_run_folder(tmp_path: Path) -> None:
    args = ["run", "--recipe", "w8a8", "--image-size", "128", "--out", str(tmp_path), "--no-export"]
    assert main(args) == 0
    assert main(args) == 0  # a second run gets its own folder; nothing is overwritten
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 2
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["weights"].startswith("RANDOM INIT")
    assert "RANDOM INIT" in (runs[0] / "report.md").read_text()
    # w8a8: 7-bit-magnitude Linears (int8 kernels, right on every CPU), 8-bit weight-only convs
    assert 7.0 < report["avg_weight_bits"] < 7.1
    assert 0.9 < report["fidelity_vs_float_torch"]["mask_iou"] <= 1.0
    assert (runs[0] / "recipe.yaml").is_file()
    assert (runs[0] / "frozen_state_dict.pt").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ladder", "9", "4"], "strictly decreasing"),
        (["--ladder", "8", "6", "--target-mb", "10"], "no step on this ladder saves a byte"),
    ],
)
def test_cdpq_bad_config_exits_2_before_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, args: list[str], message: str
) -> None:
    assert main(["cdpq", *args, "--out", str(tmp_path / "runs")]) == 2
    assert message in caplog.text
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "runs").exists()
