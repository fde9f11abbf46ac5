"""eval.report: the table, markdown and plot from a synthetic results dict (no model)."""

from __future__ import annotations

from pathlib import Path

from sam2_quant_plugin.eval.report import COLUMNS, markdown, table_rows, write_report


def _row(name: str, iou: float, size: float, runtime: str = "torch") -> dict:
    score = {"mask_iou": iou, "n_masks": 10, "n_degenerate": 1, "degenerate_share": 0.1}
    return {
        "method": name,
        "description": f"{name} method",
        "runtime": runtime,
        "avg_w_bits": 8.0,
        "a_bits": 8,
        "size_mib": size,
        "size_kind": "packed estimate" if runtime == "torch" else "onnx file",
        "points": score,
        "boxes": score,
        "embed_cosine": 0.999,
        "video": {"j_mean": iou},
        "cpu_latency_vs_float": 0.9,
        "cuda_latency_vs_float": "n/a (no CUDA EP)",
    }


def _results() -> dict:
    return {
        "weights": "random-init(seed=0)",
        "config": "sam2.1_hiera_t",
        "image_size": 512,
        "images": ["/x/groceries.jpg", "/x/truck.jpg"],
        "video": {"video": "/x/bedroom"},
        "prompts": {"point_prompts": "8x8 grid", "box_prompts": {"truck.jpg": "9 fixed-grid"}},
        "seed": 0,
        "host": "test",
        "timing_note": "note",
        "command": "sam2-quant eval --image-size 512",
        "rows": [
            _row("float", 1.0, 100.0),
            _row("ort-x", 0.95, 27.0, "onnxruntime"),
            {"method": "broken", "description": "fails", "error": "RuntimeError: boom"},
        ],
    }


def test_table_shape() -> None:
    rows = table_rows(_results()["rows"])
    assert len(rows) == 3
    assert all(len(r) == len(COLUMNS) for r in rows)
    assert rows[0][3] == "100.0 (est.)"
    assert rows[1][3] == "27.0"
    assert rows[1][5] == "n/a (no CUDA EP)"
    assert rows[2][1] == "error"


def test_markdown_states_weights_images_command() -> None:
    md = markdown(_results())
    assert "random-init(seed=0)" in md
    assert "groceries.jpg" in md
    assert "`sam2-quant eval --image-size 512`" in md
    assert "broken: RuntimeError: boom" in md
    assert md.count("\n| ") == 1 + 3  # header + 3 rows


def test_write_report(tmp_path: Path) -> None:
    paths = write_report(_results(), tmp_path)
    assert {p.name for p in paths.values()} == {"results.json", "results.md", "size_vs_iou.png"}
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_decoder_note_names_the_rows_with_their_own_decoder() -> None:
    from sam2_quant_plugin.eval.report import decoder_note

    rows = [_row("float", 1.0, 100.0), _row("a", 0.9, 10.0), _row("b-ort", 0.9, 10.0, "onnxruntime")]
    assert decoder_note(rows) == "Decoder: torch float for every method (no method here quantizes it)."
    rows[1]["decoder"], rows[2]["decoder"] = "quantized", "onnxruntime"
    note = decoder_note(rows)
    assert "quantized torch decoder for a;" in note
    assert "decoder file on onnxruntime for b-ort" in note
    assert "float" in note.split("except")[0]
