"""Bad clips, thread counts, providers and output paths through the CLI (audit items 1-3, 8, 11, 12, 15,
17): each ends in one line naming the problem and the fix, exit 2, and leaves nothing behind.

Same table and placeholders as ``test_bad_inputs.py`` (``{good}`` a float bundle at 64 px, ``{tmp}`` the
row's folder, ``{img}`` a bundled photo, ``{b}`` the row's own bundle); ``{clip}`` is a frame folder the
row's setup fills.
"""

# ruff: noqa: E501  (the table reads best with one row per line)
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sam2_quant_plugin import timer
from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.errors import DataError
from sam2_quant_plugin.io.images import video_frames
from sam2_quant_plugin.sam2 import bundled_images
from tests.cli._bad_inputs_helpers import copy_bundle
from tests.cli.test_bad_inputs import Ctx, Row, _file, run_row


def _clip(*frames: tuple[int, int] | None) -> Callable[[Ctx], None]:
    """A clip folder ``{tmp}/clip``: one JPEG frame of (width, height) per item, a 0-byte file for None."""

    def setup(ctx: Ctx) -> None:
        ctx["clip"].mkdir()
        for i, size in enumerate(frames):
            path = ctx["clip"] / f"{i:05d}.jpg"
            if size is None:
                path.write_bytes(b"")
            else:
                Image.new("RGB", size, (90, 120, 150)).save(path, "JPEG")

    return setup


def _cuda_ep_missing(ctx: Ctx) -> None:
    from sam2_quant_plugin.onnx.runtime import missing_provider_message

    if missing_provider_message("cuda") is None:
        pytest.skip("this onnxruntime has the CUDA EP: --provider cuda is valid here")


def _fail_on_overlay(ctx: Ctx) -> Callable[..., Path]:
    """``atomic_write`` that fails on the overlay file (after the mask file was written)."""
    from sam2_quant_plugin.io import atomic

    real = atomic.atomic_write

    def write(path: Any, *args: Any, **kwargs: Any) -> Path:
        if str(path).endswith("_overlay.png"):
            raise DataError(f"cannot write {path} (injected). Fix: none, a test.")
        return real(path, *args, **kwargs)

    return write


def _raise(ctx: Ctx) -> Callable[..., None]:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise DataError("injected failure after the exports. Fix: none, a test.")

    return boom


TRACK = ("track", "--onnx-dir", "{good}", "--point", "9,9")
INFER = ("infer", "--onnx-dir", "{good}", "--image", "{img}", "--point", "9,9")
BENCH = ("bench", "--image-size", "64", "--variants", "float", "--points-per-side", "1")
ZERO, MIXED = _clip((64, 48), None), _clip((64, 48), (64, 48), (48, 64))

ROWS = [
    # 1: an unreadable frame is named (PIL's UnidentifiedImageError was a traceback)
    Row("track-frame-0-bytes", (*TRACK, "--video", "{clip}", "--out", "{tmp}/runs"), "00001.jpg cannot be read", ZERO),
    Row("validate-frame-0-bytes", ("validate", "--onnx-dir", "{good}", "--video", "{clip}"), "00001.jpg cannot be read", ZERO),
    Row("export-calib-frame-0-bytes", ("export", "--recipe", "w8a8_video", "--calib-video", "{clip}", "--image-size", "64", "--out", "{tmp}/b2"),
        "00001.jpg cannot be read", ZERO),
    Row("eval-frame-0-bytes-before-the-model", ("eval", "--image-size", "64", "--methods", "float", "--video", "{clip}", "--out", "{tmp}/runs"),
        "00001.jpg cannot be read", ZERO, patches=(("sam2_quant_plugin.cli.eval_cmd.build_model", _raise),)),
    # 2: frames of different sizes (track crashed after tracking; validate accepted them)
    Row("track-frames-mixed-size", (*TRACK, "--video", "{clip}", "--out", "{tmp}/runs"), "00002.jpg is 48x64", MIXED),
    Row("validate-frames-mixed-size", ("validate", "--onnx-dir", "{good}", "--video", "{clip}"), "frames differ in size", MIXED),
    # 3: bench's numbers up front; a failure after the exports leaves no run folder
    Row("bench-repeats-0", (*BENCH, "--repeats", "0", "--out", "{tmp}/runs"), "--repeats is 0"),
    Row("bench-points-per-side-0", ("bench", "--image-size", "64", "--points-per-side", "0", "--out", "{tmp}/runs"), "--points-per-side is 0"),
    Row("bench-threads-negative", (*BENCH, "--threads", "-1", "--out", "{tmp}/runs"), "--threads is -1"),
    Row("bench-fails-late", (*BENCH, "--repeats", "1", "--out", "{tmp}/runs"), "injected failure",
        patches=(("sam2_quant_plugin.cli.bench_cmd.audit_variants", _raise),)),
    # 8: infer writes both files or neither
    Row("infer-overlay-exists", (*INFER, "--out", "{tmp}/pp"), "pp_overlay.png already exist",
        lambda ctx: _file(ctx["tmp"] / "pp_overlay.png")),
    Row("infer-overlay-write-fails", (*INFER, "--out", "{tmp}/new/pp"), "injected",
        patches=(("sam2_quant_plugin.io.atomic.atomic_write", _fail_on_overlay),)),
    # 11: negative thread counts
    Row("track-threads-negative", (*TRACK, "--threads", "-1", "--out", "{tmp}/runs"), "--threads is -1"),
    Row("eval-threads-negative", ("eval", "--image-size", "64", "--threads", "-1", "--out", "{tmp}/runs"), "--threads is -1"),
    Row("validate-threads-negative", ("validate", "--onnx-dir", "{good}", "--threads", "-1"), "--threads is -1"),
    # 12: --out under or at an existing file
    Row("track-out-file", (*TRACK, "--out", "{tmp}/afile"), "is a file, not a folder", lambda ctx: _file(ctx["tmp"] / "afile")),
    Row("bench-out-file", (*BENCH, "--out", "{tmp}/afile"), "is a file, not a folder", lambda ctx: _file(ctx["tmp"] / "afile")),
    Row("infer-out-under-file", (*INFER, "--out", "{tmp}/afile/x"), "is a file, not a folder", lambda ctx: _file(ctx["tmp"] / "afile")),
    # 15: --out an existing folder (was: <folder>.png beside it)
    Row("infer-out-is-folder", (*INFER, "--out", "{tmp}/d"), "is a folder", lambda ctx: _file(ctx["tmp"] / "d" / "x")),
    # 17: --provider cuda without the CUDA EP is an error, as --device cuda without a GPU
    Row("infer-provider-cuda", (*INFER, "--provider", "cuda", "--out", "{tmp}/m"), "--provider cuda", _cuda_ep_missing),
    Row("track-provider-cuda", (*TRACK, "--provider", "cuda", "--out", "{tmp}/runs"), "--provider cuda", _cuda_ep_missing),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, request: pytest.FixtureRequest) -> None:
    run_row(row, request, clip=request.getfixturevalue("tmp_path") / "clip")


def test_video_frames_checks_headers_and_sizes(tmp_path: Path) -> None:
    ctx: Ctx = {"clip": tmp_path / "clip"}
    _clip((64, 48), (64, 48))(ctx)
    assert [p.name for p in video_frames(ctx["clip"])] == ["00000.jpg", "00001.jpg"]
    (ctx["clip"] / "00002.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"00002.jpg cannot be read.*Fix"):
        video_frames(ctx["clip"])
    Image.new("RGB", (32, 48)).save(ctx["clip"] / "00002.jpg", "JPEG")
    with pytest.raises(DataError, match=r"00000.jpg is 64x48, 00002.jpg is 32x48\). Fix"):
        video_frames(ctx["clip"])


def test_summary_of_no_samples_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="no timed runs"):
        timer.summary_ms([])


def test_infer_default_output_is_beside_the_bundle(tmp_path: Path, good_bundle: Path) -> None:
    bundle = copy_bundle(good_bundle, tmp_path / "b")
    inside = set(p.name for p in bundle.iterdir())
    img = bundled_images()[0]
    assert main(["infer", "--onnx-dir", str(bundle), "--image", str(img), "--point", "9,9"]) == 0
    assert set(p.name for p in bundle.iterdir()) == inside  # the bundle holds what export wrote
    assert (tmp_path / f"{img.stem}_mask.png").is_file()
    assert (tmp_path / f"{img.stem}_mask_overlay.png").is_file()
    first = (tmp_path / f"{img.stem}_mask.png").read_bytes()
    # a second prompt on the same photo takes the next free name; the first result stays as it was
    (tmp_path / f"{img.stem}_mask_2_overlay.png").write_bytes(b"")  # half of _2 taken: _3 is the first free
    assert main(["infer", "--onnx-dir", str(bundle), "--image", str(img), "--box", "0,0,40,40"]) == 0
    assert (tmp_path / f"{img.stem}_mask_3.png").is_file()
    assert (tmp_path / f"{img.stem}_mask_3_overlay.png").is_file()
    assert not (tmp_path / f"{img.stem}_mask_2.png").exists()
    assert (tmp_path / f"{img.stem}_mask.png").read_bytes() == first


def test_bench_publishes_its_run_folder_whole(tmp_path: Path) -> None:
    argv = ["bench", "--image-size", "64", "--variants", "float", "--repeats", "1", "--points-per-side", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()  # one published folder, no partial one beside it
    assert run.name.startswith("20")
    assert ".partial-" not in run.name
    row = json.loads((run / "bench.json").read_text())["variants"]["float"]
    assert Path(row["encoder_path"]).parent == run / "float"  # the published path, not the partial one
    assert f"`{run}/bench.json`" in (run / "BENCHMARKS.md").read_text()
