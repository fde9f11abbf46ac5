"""CDPQ settings and resume checkpoints: meaningless numbers and damaged run files fail with the fix."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from sam2_quant_plugin.cdpq.checkpoint import QUANT, STATE, STUDENT, SearchState, check_resumable, read_state
from sam2_quant_plugin.cdpq.config import CDPQConfig
from sam2_quant_plugin.errors import CheckpointError, ConfigError

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"impact_threshold": NAN}, "impact_threshold=nan must be a finite number"),
        ({"impact_threshold": INF}, "impact_threshold=inf"),
        ({"target_avg_bits": INF}, "target_avg_bits=inf must be a finite number"),
        ({"target_avg_bits": NAN}, "target_avg_bits=nan"),
        ({"target_avg_bits": 9.0}, "above the top rung"),
        ({"target_bytes": INF}, "target_bytes=inf"),
        ({"max_attempts": 0}, "max_attempts=0 must be a whole number >= 1"),
        ({"max_attempts": -1}, "max_attempts=-1"),
        ({"lr": NAN}, "lr=nan must be a finite number > 0"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"scale_lr": INF}, "scale_lr=inf"),
        ({"grad_clip": NAN}, "grad_clip=nan"),
        ({"threshold_growth": 0.5}, "threshold_growth=0.5"),
        ({"bit_lambda": NAN}, "bit_lambda=nan"),
        ({"bit_lr": INF}, "bit_lr=inf"),
        ({"sensitivity_weight": -1.0}, "sensitivity_weight=-1.0"),
        ({"rounds": -1}, "rounds=-1"),
        ({"rounds": 1.5}, "rounds=1.5 must be a whole number"),
        ({"epochs_per_round": 0}, "epochs_per_round=0"),
        ({"max_passes": 0}, "max_passes=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"seed": 2**70}, "outside 0.."),
        ({"seed": -1}, "seed -1"),
    ],
)
def test_meaningless_numbers_are_refused(kw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match="Fix") as e:
        CDPQConfig(**kw)
    assert needle in str(e.value)


def test_loss_weights_and_unknown_weight_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"weights\.mask=nan"):
        CDPQConfig.from_dict({"weights": {"mask": NAN}})
    with pytest.raises(ConfigError, match=r"weights\.temperature=0"):
        CDPQConfig.from_dict({"weights": {"temperature": 0}})
    with pytest.raises(ConfigError, match="foo"):
        CDPQConfig.from_dict({"weights": {"foo": 1.0}})


def test_resume_with_max_attempts_zero_is_refused_and_valid_settings_pass() -> None:
    cfg = CDPQConfig(
        impact_threshold=-1.0, threshold_growth=1.0, rounds=0, target_avg_bits=8.0, seed=2**63 - 1
    )
    with pytest.raises(ConfigError, match="max_attempts=0"):
        replace(cfg, max_attempts=0)  # what `cdpq --resume RUN --max-attempts 0` does
    assert json.loads(json.dumps(cfg.to_dict(), allow_nan=False))["lr"] == cfg.lr  # config.json stays JSON


def _run_dir(tmp_path: Path) -> Path:
    (tmp_path / STATE).write_text(json.dumps(asdict(SearchState(attempts=3))))
    torch.save({"a.weight_fake_quant.scale": torch.ones(2)}, tmp_path / QUANT)
    return tmp_path


def test_an_intact_run_folder_reads_back(tmp_path: Path) -> None:
    check_resumable(_run_dir(tmp_path))
    assert read_state(tmp_path).attempts == 3


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda d: (d / STATE).write_text("{oops"), "search_state.json cannot be read"),
        (lambda d: (d / STATE).write_text('{"x": 1}'), "unknown key 'x'"),
        (lambda d: (d / STATE).write_text("[1]"), "not a JSON object"),
        (
            lambda d: (d / STATE).write_text(json.dumps({**asdict(SearchState()), "attempts": "3"})),
            "'attempts'",
        ),
        (lambda d: (d / QUANT).write_bytes((d / QUANT).read_bytes()[:100]), "quantizers.pt cannot be loaded"),
        (lambda d: (d / QUANT).unlink(), "quantizers.pt cannot be loaded"),
        (lambda d: (d / STUDENT).write_bytes(b"junk"), "student.pt cannot be loaded"),
    ],
)
def test_a_damaged_run_folder_names_the_file_and_the_fix(tmp_path: Path, damage, needle: str) -> None:  # type: ignore[no-untyped-def]
    damage(_run_dir(tmp_path))
    with pytest.raises(CheckpointError, match="start a fresh run without --resume") as e:
        check_resumable(tmp_path)
    assert needle in str(e.value)
