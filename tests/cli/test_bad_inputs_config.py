"""More bad inputs through the CLI (recipes, export profiles, validate thresholds, edited manifests, CDPQ
settings and damaged run folders), in the house style of ``test_bad_inputs.py``: one ``Row`` per input,
one error line naming the problem and the fix, exit 2, nothing left behind."""

# ruff: noqa: E501  (the table reads best with one row per line)
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from sam2_quant_plugin.cdpq.checkpoint import QUANT, STATE, SearchState
from sam2_quant_plugin.cdpq.config import CDPQConfig
from sam2_quant_plugin.cli.main import main
from tests.cli._bad_inputs_helpers import edit_manifest
from tests.cli.test_bad_inputs import V1, Ctx, Row, _manifest, _recipe, run_row


def _boom(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("reached the slow part: the check must come first")


def _profile(text: str) -> Any:
    def setup(ctx: Ctx) -> None:
        (ctx["tmp"] / "p.yaml").write_text(text)

    return setup


def _swapped(ctx: Ctx) -> None:
    m = json.loads((ctx["good"] / "manifest.json").read_text())
    files, sizes = m["files"], m["bytes"]
    edit_manifest(ctx["good"], ctx["b"], files={"encoder": files["decoder"], "decoder": files["encoder"]},
                  bytes={"encoder": sizes["decoder"], "decoder": sizes["encoder"]})  # fmt: skip


def _run_folder(state: str | None = None, quant: bytes | None = None) -> Any:
    """A CDPQ run folder (config, log, state, quantizers) with one file damaged."""

    def setup(ctx: Ctx) -> None:
        d = ctx["tmp"] / "run"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(CDPQConfig(image_size=64).to_dict()))
        (d / "train.log").write_text("")
        (d / STATE).write_text(state if state is not None else json.dumps(asdict(SearchState())))
        torch.save({"x.weight_fake_quant.scale": torch.ones(1)}, d / QUANT)
        if quant is not None:
            (d / QUANT).write_bytes((d / QUANT).read_bytes()[: len(quant)])

    return setup


PROFILE = ("export", "--profile", "{tmp}/p.yaml", "--image-size", "64", "--out", "{tmp}/b")
INSPECT = ("inspect", "{tmp}/r.yaml")
VALIDATE = ("validate", "--onnx-dir", "{b}")
CDPQ = ("cdpq", "--image-size", "64", "--out", "{tmp}/runs")
RESUME = ("cdpq", "--resume", "{tmp}/run")
NO_READ = (("sam2_quant_plugin.onnx.pipeline.read_manifest", lambda c: _boom),)
NO_CALIBRATION = (("sam2_quant_plugin.api.prepare_qat", lambda c: _boom),)
NO_SESSION = (("sam2_quant_plugin.cdpq.run.build_session", lambda c: _boom),)

ROWS = [
    # -- 4: recipe booleans are YAML booleans ------------------------------------------------------------
    Row("recipe-symmetric-quoted-false", INSPECT, "symmetric='false' must be true or false",
        _recipe(V1 + 'default:\n  weight: {bits: 8, symmetric: "false", narrow_range: "false"}\n')),
    Row("recipe-learnable-quoted-false", INSPECT, "learnable='false' must be true or false",
        _recipe(V1 + 'default:\n  weight: {bits: {learnable: "false", init: 6}}\n')),
    Row("recipe-learn-scale-1", INSPECT, "learn_scale=1", _recipe(V1 + "default:\n  weight: {bits: 8, learn_scale: 1}\n")),
    # -- 16: inspect refuses what run and export refuse ---------------------------------------------------
    Row("inspect-recipe-without-rules", INSPECT, "quantizes no layer", _recipe(V1)),
    Row("inspect-default-null", INSPECT, "quantizes no layer", _recipe(V1 + "default: null\n")),
    # -- 5: export profiles are read strictly, each key type-checked ---------------------------------------
    Row("profile-broken-yaml", PROFILE, "cannot be read", _profile("recipe: [unclosed\n")),
    Row("profile-image-size-abc", PROFILE, "image_size must be a whole number, got 'abc'", _profile("image_size: abc\n")),
    Row("profile-opset-x", PROFILE, "opset must be a whole number", _profile("opset: x\n")),
    Row("profile-fp16-quoted-false", PROFILE, "fp16 must be true or false", _profile('fp16: "false"\n')),
    Row("profile-graphs-string", PROFILE, "graphs must be a list of names", _profile("graphs: memory_attention\n")),
    Row("profile-graphs-unknown", PROFILE, "graphs ['nope'] are unknown", _profile("graphs: [nope]\n")),
    Row("profile-top-level-list", PROFILE, "must be a mapping", _profile("- a\n- b\n")),
    Row("profile-duplicate-key", PROFILE, "appears twice", _profile("opset: 17\nopset: 21\n")),
    Row("profile-target-cpu-unknown", PROFILE, "target_cpu 'arm' is unknown", _profile("target_cpu: arm\n")),
    # -- 18: MatMulNBits widths before calibrating ---------------------------------------------------------
    Row("export-nbits-widths-3", ("export", "--recipe", "w8a8", "--weight-format", "matmulnbits", "--nbits-widths", "3",
        "--image-size", "64", "--out", "{tmp}/b"), "MatMulNBits widths (3,)", patches=NO_CALIBRATION),
    # -- 10: validate thresholds before anything runs ------------------------------------------------------
    Row("validate-min-mask-iou-nan", ("validate", "--onnx-dir", "{good}", "--min-mask-iou", "nan"), "--min-mask-iou nan", patches=NO_READ),
    Row("validate-min-mask-iou-2", ("validate", "--onnx-dir", "{good}", "--min-mask-iou", "2"), "--min-mask-iou 2.0", patches=NO_READ),
    Row("validate-min-embed-cosine-5", ("validate", "--onnx-dir", "{good}", "--min-embed-cosine", "-5"), "in -1..1", patches=NO_READ),
    Row("validate-min-video-j-inf", ("validate", "--onnx-dir", "{good}", "--min-video-j", "inf"), "--min-video-j inf", patches=NO_READ),
    # -- 7, 13, 14: edited manifests -----------------------------------------------------------------------
    Row("manifest-seed-2-70", VALIDATE, "seed 1180591620717411303424 is outside", _manifest(seed=2**70)),
    Row("manifest-encoder-decoder-swapped", VALIDATE, "is not an image encoder graph", _swapped),
    Row("manifest-config-large-on-tiny", VALIDATE, "set config to 'sam2.1_hiera_t'", _manifest(config="sam2.1_hiera_l")),
    Row("manifest-config-unknown", VALIDATE, "repair it in manifest.json", _manifest(config="sam2.1_hiera_zz")),
    Row("manifest-recipe-spec-unknown-key", VALIDATE, "unknown key(s) ['foo']",
        _manifest(recipe="x", recipe_spec={"version": 1, "name": "x", "foo": 1})),
    # -- 9: CDPQ numbers ----------------------------------------------------------------------------------
    Row("cdpq-impact-threshold-nan", (*CDPQ, "--impact-threshold", "nan"), "impact_threshold=nan"),
    Row("cdpq-target-bits-inf", (*CDPQ, "--target-bits", "inf"), "target_avg_bits=inf"),
    Row("cdpq-target-bits-above-ladder", (*CDPQ, "--target-bits", "9"), "above the top rung"),
    Row("cdpq-max-attempts-0", (*CDPQ, "--max-attempts", "0"), "max_attempts=0"),
    Row("cdpq-max-attempts-negative", (*CDPQ, "--max-attempts", "-1"), "max_attempts=-1"),
    Row("cdpq-lr-nan", (*CDPQ, "--lr", "nan"), "lr=nan"),
    # -- 6: a damaged run folder on --resume, before any model is built ------------------------------------
    Row("cdpq-resume-state-not-json", RESUME, "search_state.json cannot be read", _run_folder(state="{oops"), patches=NO_SESSION),
    Row("cdpq-resume-state-wrong-keys", RESUME, "unknown key 'x'", _run_folder(state='{"x": 1}'), patches=NO_SESSION),
    Row("cdpq-resume-quantizers-truncated", RESUME, "quantizers.pt cannot be loaded", _run_folder(quant=b"x" * 64), patches=NO_SESSION),
    Row("cdpq-resume-max-attempts-0", (*RESUME, "--max-attempts", "0"), "max_attempts=0", _run_folder(), patches=NO_SESSION),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, request: pytest.FixtureRequest) -> None:
    run_row(row, request)


@pytest.mark.parametrize("seed", [str(2**64), "99999999999999999999999", "-1", "1.5"])
def test_seed_out_of_range_is_an_argument_error(
    seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", "--image-size", "64", "--seed", seed, "--out", str(tmp_path / "b")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed" in err
    assert "Fix: pass a whole number in 0..9223372036854775807" in err
    assert "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_largest_seed_is_accepted_by_torch() -> None:
    from sam2_quant_plugin.cli.common import seed_arg

    torch.Generator().manual_seed(seed_arg(str(2**63 - 1)) + 7919)  # samplers add offsets to the seed
    assert math.isfinite(seed_arg("0"))
