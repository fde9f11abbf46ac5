"""CDPQ resume checkpoints hold what resume needs: trained parameters, quantizer state, Adam while needed."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sam2_quant_plugin.cdpq import checkpoint, run_cdpq
from sam2_quant_plugin.cdpq.artifacts import read_jsonl
from sam2_quant_plugin.cdpq.checkpoint import QUANT, STUDENT, SearchState
from sam2_quant_plugin.cdpq.session import build_session
from sam2_quant_plugin.cdpq.task import TaskModule
from sam2_quant_plugin.cdpq.train import kd_epoch, make_optimizer
from tests.cdpq.toy import toy_config, toy_session_kw


def _trained_session():
    s = build_session(toy_config(rounds=2), **toy_session_kw())
    opt = make_optimizer(s.student, s.cfg.lr, s.cfg.scale_lr)
    kd_epoch(TaskModule(s.student, s.task), s.student, s.cache, s.train, opt, s.cfg.weights, progress=False)
    s.student.get_submodule("body.2.weight_fake_quant").set_bits(5)  # a quantizer change as well
    return s, opt


def test_checkpoint_holds_trained_params_and_restores_the_student(tmp_path: Path) -> None:
    s, opt = _trained_session()
    checkpoint.save(tmp_path, s.student, SearchState(rounds_done=1), opt, full=True)
    blob = torch.load(tmp_path / STUDENT, weights_only=True)
    assert set(blob) == {"params", "optimizer"}
    assert blob["params"]
    assert all(n.startswith("body.") for n in blob["params"])
    assert not any("fake_quant" in n for n in blob["params"])  # quantizers live in their own file
    assert blob["optimizer"] is not None

    fresh = build_session(toy_config(rounds=2), **toy_session_kw())
    fresh_opt = make_optimizer(fresh.student, fresh.cfg.lr, fresh.cfg.scale_lr)
    state = checkpoint.load(tmp_path, fresh.student, fresh_opt)
    assert state is not None
    assert state.rounds_done == 1
    want, got = s.student.state_dict(), fresh.student.state_dict()
    assert set(want) == set(got)
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert str(fresh_opt.state_dict()) == str(opt.state_dict())


def test_no_optimizer_after_the_last_round_and_smaller_than_a_full_student(tmp_path: Path) -> None:
    s, _opt = _trained_session()
    checkpoint.save(tmp_path, s.student, SearchState(rounds_done=2), None, full=True)
    assert torch.load(tmp_path / STUDENT, weights_only=True)["optimizer"] is None
    full = tmp_path / "full.pt"
    torch.save({"student": s.student.state_dict(), "optimizer": None}, full)
    assert (tmp_path / STUDENT).stat().st_size < full.stat().st_size
    assert (tmp_path / QUANT).exists()


def test_old_full_student_checkpoints_still_load(tmp_path: Path) -> None:
    s, opt = _trained_session()
    checkpoint.save(tmp_path, s.student, SearchState(rounds_done=1), opt, full=True)
    torch.save({"student": s.student.state_dict(), "optimizer": opt.state_dict()}, tmp_path / STUDENT)
    fresh = build_session(toy_config(rounds=2), **toy_session_kw())
    checkpoint.load(tmp_path, fresh.student)
    assert torch.equal(fresh.student.body[0].weight, s.student.body[0].weight)


def test_resume_after_a_training_round_matches_uninterrupted(tmp_path: Path) -> None:
    kw = {"ladder": (8, 6, 4, 3, 2), "impact_threshold": 0.05, "rounds": 2}
    full = run_cdpq(toy_config(**kw), tmp_path / "a", progress=False, **toy_session_kw())
    attempts = read_jsonl(Path(full["run_dir"]) / "attempts.jsonl")
    later = [a["attempt"] for a in attempts if a["pass"] >= 2]
    assert later, "the run must reach a pass after a training round"
    cut = run_cdpq(
        toy_config(max_attempts=later[0], **kw), tmp_path / "b", progress=False, **toy_session_kw()
    )
    run_dir = Path(cut["run_dir"])
    assert cut["interrupted"]
    assert json.loads((run_dir / "search_state.json").read_text())["rounds_done"] >= 1
    assert (run_dir / STUDENT).exists()
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**cfg, "max_attempts": None}))
    resumed = run_cdpq(resume=run_dir, progress=False, **toy_session_kw())
    assert resumed["bits"] == full["bits"]
    assert resumed["attempts"] == full["attempts"]
    assert resumed["weight_checksum"] == full["weight_checksum"]
