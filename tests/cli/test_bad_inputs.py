"""Bad inputs through the CLI (issue #11): each ends in one line naming the problem and the fix, exit 2,
and leaves nothing behind. One row per input in ``ROWS``: the next bad input is one more line.

Placeholders in a row's arguments: ``{good}`` a float bundle (64 px, exported once per session),
``{quant}`` a w8a8 bundle calibrated on one photo, ``{b}`` the row's own bundle (built by its setup),
``{tmp}`` the row's temporary folder, ``{img}`` a bundled photo, ``{mnt}`` a tmpfs mounted by the setup.
"""

# ruff: noqa: E501  (the table reads best with one row per line)
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.sam2 import bundled_images
from tests.cli._bad_inputs_helpers import (
    copy_bundle,
    edit_manifest,
    onnx_with_outside_data,
    png_header_only,
    replace_file,
    tmpfs,
)

Ctx = dict[str, Any]


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]
    needle: str  # must appear in the single error line
    setup: Callable[[Ctx], None] | None = None
    patches: tuple[tuple[str, Callable[[Ctx], Any]], ...] = field(default=())
    code: int = 2
    keeps_output: bool = False  # e.g. Ctrl-C in cdpq keeps its resumable run folder


def _recipe(text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx["tmp"] / "r.yaml").write_text(text)

    return setup


def _manifest(**changes: Any) -> Callable[[Ctx], None]:
    return lambda ctx: edit_manifest(ctx["good"], ctx["b"], **changes) and None


def _raw_manifest(text: str) -> Callable[[Ctx], None]:
    return lambda ctx: copy_bundle(ctx["good"], ctx["b"], raw_manifest=text) and None


def _encoder(kind: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        b = copy_bundle(ctx["good"], ctx["b"])
        enc = b / "encoder.onnx"
        if kind == "truncated":
            replace_file(enc, enc.read_bytes()[:4096])
        elif kind == "truncated-same-size":  # manifest edited to match: the ONNX parse must catch it
            replace_file(enc, enc.read_bytes()[:4096])
            edit_manifest(ctx["good"], ctx["tmp"] / "m", bytes={"encoder": 4096})
            replace_file(b / "manifest.json", (ctx["tmp"] / "m" / "manifest.json").read_bytes())
            shutil.rmtree(ctx["tmp"] / "m")
        elif kind == "empty":
            replace_file(enc, b"")
        elif kind == "fifo":
            enc.unlink()
            os.mkfifo(enc)
        elif kind == "outside-data":
            enc.unlink()
            onnx_with_outside_data(enc)
            edit_manifest(ctx["good"], ctx["tmp"] / "m", bytes={"encoder": enc.stat().st_size})
            replace_file(b / "manifest.json", (ctx["tmp"] / "m" / "manifest.json").read_bytes())
            shutil.rmtree(ctx["tmp"] / "m")

    return setup


def _mount(size: str, read_only: bool = False) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        mnt = ctx["stack"].enter_context(tmpfs(ctx["tmp"] / "mnt", size=size, read_only=read_only))
        if mnt is None:
            pytest.skip("cannot mount a tmpfs here (needs root)")

    return setup


def _file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


INFER = ("infer", "--onnx-dir", "{good}", "--image", "{img}")
V1 = "version: 1\nname: r\n"
LAUGHS = (
    "a: &a ["
    + ",".join(['"xxxxxxxxxx"'] * 10)
    + "]\n"
    + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdef", "bcdefg"))
)

ROWS = [
    # -- the table of issue #11 ------------------------------------------------------------------------
    Row("validate-truncated-encoder", ("validate", "--onnx-dir", "{b}"), "truncated", _encoder("truncated")),
    Row("infer-truncated-encoder", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "not a valid ONNX model", _encoder("truncated-same-size")),
    Row("infer-zero-byte-encoder", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "empty (0 bytes)", _encoder("empty")),
    Row("manifest-not-json", ("validate", "--onnx-dir", "{b}"), "not valid JSON", _raw_manifest("{oops")),
    Row("manifest-is-list", ("validate", "--onnx-dir", "{b}"), "got a JSON list", _raw_manifest("[1, 2]")),
    Row("manifest-empty-object", ("validate", "--onnx-dir", "{b}"), "missing key", _raw_manifest("{}")),
    Row("manifest-image-size-abc", ("validate", "--onnx-dir", "{b}"), "'image_size' must be int",
        _manifest(image_size="abc")),
    Row("manifest-image-size-0", ("validate", "--onnx-dir", "{b}"), "image_size 0 must be a multiple",
        _manifest(image_size=0)),
    Row("manifest-image-size-wrong", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "takes 64x64 images", _manifest(image_size=96)),
    Row("manifest-path-dotdot", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "outside the bundle", _manifest(files={"encoder": "../../../../etc/passwd"})),
    Row("manifest-path-absolute", ("validate", "--onnx-dir", "{b}"), "relative to its own folder",
        _manifest(files={"encoder": "/etc/passwd"})),
    Row("onnx-external-data-outside", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "outside the bundle", _encoder("outside-data")),
    Row("export-read-only-out", ("export", "--image-size", "64", "--out", "{mnt}/b"), "not writable",
        _mount("1m", read_only=True)),
    Row("export-full-disk-up-front", ("export", "--image-size", "64", "--out", "{mnt}/b"), "MB free",
        _mount("8m")),
    Row("export-full-disk-while-writing", ("export", "--image-size", "64", "--out", "{mnt}/b"), "disk full",
        _mount("8m"), patches=(("sam2_quant_plugin.cli.export_cmd.check_export_target", lambda c: _noop),)),
    Row("export-opset-5", ("export", "--image-size", "64", "--opset", "5", "--out", "{tmp}/b"),
        "opset 5 is not supported"),
    Row("cdpq-resume-not-a-run", ("cdpq", "--resume", "{tmp}"), "not a CDPQ run folder"),
    Row("cdpq-resume-missing", ("cdpq", "--resume", "{tmp}/nope"), "does not exist"),
    Row("cdpq-set-not-json", ("cdpq", "--set", "not json", "--out", "{tmp}/runs"), "not valid JSON"),
    Row("cdpq-set-not-object", ("cdpq", "--set", "[1]", "--out", "{tmp}/runs"), "JSON object"),
    Row("recipe-percentile-150", ("run", "--recipe", "{tmp}/r.yaml", "--image-size", "64", "--out", "{tmp}/runs"),
        "rejects observer_args", _recipe(V1 + "default:\n  activation: {bits: 8, observer_args: {percentile: 150}}\n")),
    Row("recipe-unknown-observer-arg", ("run", "--recipe", "{tmp}/r.yaml", "--image-size", "64", "--out", "{tmp}/runs"),
        "unexpected keyword argument 'foo'", _recipe(V1 + "default:\n  weight: {bits: 8, observer_args: {foo: 1}}\n")),
    Row("infer-fp16-without-fp16", (*INFER, "--point", "9,9", "--fp16"), "no fp16 graphs"),
    Row("infer-point-nan", (*INFER, "--point", "nan,nan"), "not a finite number"),
    Row("infer-point-inf", (*INFER, "--point", "inf,inf"), "not a finite number"),
    Row("infer-huge-image", ("infer", "--onnx-dir", "{good}", "--image", "{tmp}/huge.png", "--point", "9,9"),
        "too large", lambda ctx: png_header_only(ctx["tmp"] / "huge.png", 30000, 30000) and None),
    Row("infer-negative-point", (*INFER, "--point", "-5,10"), "(-5, 10) is outside the"),
    Row("cdpq-ctrl-c", ("cdpq", "--image-size", "64", "--out", "{tmp}/runs"), "--resume", code=130,
        patches=(("sam2_quant_plugin.cdpq.run.build_session", lambda c: _interrupt),), keeps_output=True),
    # -- the paragraph after it -------------------------------------------------------------------------
    Row("recipe-version-abc", ("inspect", "{tmp}/r.yaml"), "'version' must be", _recipe("version: abc\n")),
    Row("recipe-version-2", ("inspect", "{tmp}/r.yaml"), "set 'version: 1'", _recipe("version: 2\nname: r\n")),
    Row("recipe-default-5", ("inspect", "{tmp}/r.yaml"), "'default' must be", _recipe(V1 + "default: 5\n")),
    Row("recipe-targets-5", ("inspect", "{tmp}/r.yaml"), "'targets' must be", _recipe(V1 + "targets: 5\n")),
    Row("inspect-unknown-observer", ("inspect", "{tmp}/r.yaml"), "not registered",
        _recipe(V1 + "default:\n  weight: {bits: 8, observer: nope}\n")),
    Row("inspect-bad-observer-args", ("inspect", "{tmp}/r.yaml"), "rejects observer_args",
        _recipe(V1 + "default:\n  weight: {bits: 8, observer: mse, observer_args: {grid: [1]}}\n")),
    Row("recipe-duplicate-key", ("inspect", "{tmp}/r.yaml"), "appears twice",
        _recipe(V1 + "default:\n  weight: {bits: 8}\n  weight: {bits: 4}\n")),
    Row("recipe-two-exact-rules", ("inspect", "{tmp}/r.yaml"), "two exact rules", _recipe(
        V1 + "rules:\n" + "  - {match: image_encoder.neck.convs.0.conv, weight: {bits: 8}}\n" * 2)),
    Row("recipe-yaml-bomb", ("inspect", "{tmp}/r.yaml"), "expands to more than", _recipe(LAUGHS)),
    Row("infer-fifo-encoder", ("infer", "--onnx-dir", "{b}", "--image", "{img}", "--point", "9,9"),
        "not a regular file", _encoder("fifo")),
    Row("validate-weights-path-not-opened", ("validate", "--onnx-dir", "{b}"), "pass --checkpoint",
        _manifest(random_init=False, weights="/etc/passwd")),
    Row("infer-point-outside", (*INFER, "--point", "5000,10"), "outside the"),
    Row("infer-box-inverted", (*INFER, "--box", "100,100,50,50"), "empty or inverted"),
    Row("infer-point-three-numbers", (*INFER, "--point", "1,2,3"), "must be 2 comma-separated"),
    Row("run-points-per-side-0", ("run", "--points-per-side", "0", "--image-size", "64", "--out", "{tmp}/runs"),
        "--points-per-side is 0"),
    Row("eval-points-per-side-0", ("eval", "--points-per-side", "0", "--image-size", "64", "--out", "{tmp}/runs"),
        "--points-per-side is 0"),
    Row("run-full-disk-while-writing", ("run", "--image-size", "64", "--no-export", "--out", "{mnt}/runs"), "disk full",
        _mount("8m"), patches=(("sam2_quant_plugin.cli.run_cmd.check_writable", lambda c: _noop),)),
    Row("run-read-only-out", ("run", "--image-size", "64", "--no-export", "--out", "{mnt}/runs"), "not writable",
        _mount("1m", read_only=True)),
    Row("export-out-not-empty", ("export", "--image-size", "64", "--out", "{tmp}/full"), "not empty",
        lambda ctx: _file(ctx["tmp"] / "full" / "x")),
    Row("validate-calibration-photos-missing", ("validate", "--onnx-dir", "{quant}", "--images", "{img}"),
        "not found among"),
    Row("cdpq-target-mb-negative", ("cdpq", "--target-mb", "-1", "--out", "{tmp}/runs"), "positive number"),
    Row("cdpq-target-bits-below-ladder", ("cdpq", "--target-bits", "1", "--out", "{tmp}/runs"),
        "below the lowest rung"),
    # -- a calibration clip (issue #13) ------------------------------------------------------------------
    Row("run-calib-video-missing", ("run", "--calib-video", "{tmp}/nope", "--image-size", "64", "--out", "{tmp}/runs"),
        "video folder not found"),
    Row("run-calib-video-no-frames", ("run", "--calib-video", "{tmp}", "--image-size", "64", "--out", "{tmp}/runs"),
        "holds no .jpg/.jpeg frame"),
    Row("export-calib-video-bad-names", ("export", "--recipe", "w8a8_video", "--calib-video", "{tmp}/clip", "--image-size", "64", "--out", "{tmp}/b"),
        "are not frame numbers", lambda ctx: _file(ctx["tmp"] / "clip" / "frame_a.jpg")),
    Row("export-calib-video-no-recipe", ("export", "--calib-video", "{tmp}", "--image-size", "64", "--out", "{tmp}/b"),
        "no --recipe was given"),
    Row("bench-unknown-variant", ("bench", "--variants", "nope", "--image-size", "64", "--out", "{tmp}/runs"),
        "unknown ['nope']"),
    # -- tracking a clip on a bundle (issue #13) ---------------------------------------------------------
    Row("track-no-memory-graphs", ("track", "--onnx-dir", "{good}", "--point", "9,9", "--out", "{tmp}/runs"),
        "no memory_attention / memory_encoder graph"),
    Row("track-no-prompt", ("track", "--onnx-dir", "{good}", "--out", "{tmp}/runs"), "no object given"),
    Row("track-point-outside", ("track", "--onnx-dir", "{good}", "--point", "99999,9", "--out", "{tmp}/runs"),
        "outside the"),
    Row("track-video-missing", ("track", "--onnx-dir", "{good}", "--video", "{tmp}/nope", "--point", "9,9", "--out", "{tmp}/runs"),
        "video folder not found"),
    Row("track-max-frames-zero", ("track", "--onnx-dir", "{good}", "--max-frames", "0", "--point", "9,9", "--out", "{tmp}/runs"),
        "--max-frames"),
]  # fmt: skip


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_row(row: Row, request: pytest.FixtureRequest, **extra: Any) -> None:
    """Run one row through ``sam2-quant`` and check the contract: its exit code, one error line with the
    needle and a fix, no traceback, nothing left behind. ``extra``: more placeholders (e.g. ``clip``)."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    good_bundle: Path = request.getfixturevalue("good_bundle")
    caplog: pytest.LogCaptureFixture = request.getfixturevalue("caplog")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    stack = ExitStack()
    request.addfinalizer(stack.close)
    ctx: Ctx = {"good": good_bundle, "tmp": tmp_path, "b": tmp_path / "b", "stack": stack}
    ctx |= {"img": bundled_images()[0], "mnt": tmp_path / "mnt", **extra}
    if "{quant}" in row.argv:
        ctx["quant"] = request.getfixturevalue("quant_bundle")
    if row.setup is not None:
        row.setup(ctx)
    for target, make in row.patches:
        monkeypatch.setattr(target, make(ctx))
    before = _tree(tmp_path)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        rc = main([a.format(**ctx) for a in row.argv])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert rc == row.code, caplog.text[-2000:]
    assert len(errors) == 1, errors
    assert row.needle in errors[0]
    assert "Fix" in errors[0], errors[0]
    assert "Traceback" not in caplog.text
    after = _tree(tmp_path)
    if row.keeps_output:
        assert any(p.endswith("config.json") for p in after - before)
    else:
        assert after == before, f"left behind: {sorted(after - before)}"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, request: pytest.FixtureRequest) -> None:
    run_row(row, request)
