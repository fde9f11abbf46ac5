"""The CDPQ measurement scripts in benchmarks/: every row of their tables is measured by that run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import cdpq_scaling, cdpq_vs_peers
from sam2_quant_plugin.errors import RecipeError


def _row(iou: float) -> dict[str, float]:
    return {
        "video_frames": iou,
        "photos": iou,
        "avg_weight_bits": 4.0,
        "total_mb": 14.0,
        "onnx_total_mb": 14.5,
    }


def test_peers_are_registry_methods_and_unknown_names_fail_first() -> None:
    assert [m.name for m in cdpq_vs_peers.peer_methods(",".join(cdpq_vs_peers.DEFAULT_PEERS))] == list(
        cdpq_vs_peers.DEFAULT_PEERS
    )
    assert cdpq_vs_peers.peer_methods("") == []
    with pytest.raises(RecipeError, match="unknown method"):
        cdpq_vs_peers.peer_methods("nncf-wc-int8,not-a-method")
    assert not hasattr(cdpq_vs_peers, "PEERS")  # no figures from elsewhere


def test_markdown_peer_rows_are_the_measured_ones() -> None:
    result = {
        "config": "t",
        "image_size": 128,
        "weights": "random",
        "rows": {"CDPQ search": {**_row(0.95), "seconds": 3.0}},
        "peers": {
            "nncf-wc-int4-g32": {"video_frames": 0.9, "photos": 0.91, "avg_weight_bits": 4.2, "file_mb": 16}
        },
        "peers_failed": {"nncf-wc-int8": "ImportError: no nncf"},
    }
    md = cdpq_vs_peers.markdown(result)
    assert "| nncf-wc-int4-g32 (peer, measured here) | 0.9000 | 0.9100 | 4.200 |  | 16.00 |  |" in md
    assert "Peer nncf-wc-int8 failed in this run (no row)" in md
    assert "reported" not in md


def test_scripts_parse_their_options() -> None:
    args = cdpq_vs_peers.build_parser().parse_args(["--peers", "ort-dynamic-rr"])
    assert args.peers == "ort-dynamic-rr"
    assert cdpq_vs_peers.build_parser().parse_args([]).peers == ",".join(cdpq_vs_peers.DEFAULT_PEERS)
    assert cdpq_scaling.build_parser().parse_args(["--blocks", "1", "2"]).blocks == [1, 2]


@pytest.mark.slow
def test_scaling_script_on_one_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cdpq_scaling.main(["--blocks", "1", "--ladder", "8", "4", "--out", str(tmp_path)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((run / "results.json").read_text())
    assert [r["blocks"] for r in result["rows"]] == [1]
    assert (run / "scaling.png").exists()
    assert "| 1 | 4 |" in capsys.readouterr().out


@pytest.mark.slow
def test_vs_peers_script_measures_its_peer(tmp_path: Path) -> None:
    argv = ["--rounds", "0", "--ladder", "8", "4", "--target-bits", "8", "--uniform-bits", "8"]
    argv += ["--eval-frames", "1", "--points-per-side", "2", "--no-learnable", "--peers", "ort-dynamic-rr"]
    assert cdpq_vs_peers.main([*argv, "--gptq-after", "--out", str(tmp_path)]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((run / "results.json").read_text())
    peer = result["peers"]["ort-dynamic-rr"]
    assert 0.5 < peer["photos"] <= 1.0
    assert peer["file_mb"] == pytest.approx((run / "peers" / "ort_dynamic_rr.onnx").stat().st_size / 1e6)
    assert "| ort-dynamic-rr (peer, measured here) |" in (run / "results.md").read_text()
    after = result["rows"]["CDPQ search + GPTQ afterwards"]  # the search's recipe, GPTQ-rounded afterwards
    assert 0.5 < after["photos"] <= 1.0
    assert after["avg_weight_bits"] == result["rows"]["CDPQ search"]["avg_weight_bits"]
