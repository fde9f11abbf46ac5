"""``--nbits-accuracy-level``: every command that opens onnxruntime sessions takes it, sets the process
default the session factory reads, and refuses a level onnxruntime does not have (fast)."""

from __future__ import annotations

import argparse
import logging

import pytest

from sam2_quant_plugin.cli.common import runtime_arguments
from sam2_quant_plugin.cli.main import build_parser, main
from sam2_quant_plugin.onnx.runtime import default_nbits_accuracy

#: each command that opens sessions, with its required arguments
SESSION_COMMANDS = {
    "run": [],
    "export": ["--out", "x"],
    "validate": ["--onnx-dir", "x"],
    "infer": ["--onnx-dir", "x", "--image", "y.jpg"],
    "track": ["--onnx-dir", "x", "--video", "v"],
    "bench": [],
    "eval": [],
}


@pytest.mark.parametrize("command", sorted(SESSION_COMMANDS))
def test_session_commands_take_the_level(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args([command, *SESSION_COMMANDS[command], "--nbits-accuracy-level", "0"])
    assert args.nbits_accuracy_level == 0
    assert parser.parse_args([command, *SESSION_COMMANDS[command]]).nbits_accuracy_level is None
    with pytest.raises(SystemExit) as e:
        parser.parse_args([command, *SESSION_COMMANDS[command], "--nbits-accuracy-level", "7"])
    assert e.value.code == 2
    assert "--nbits-accuracy-level" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(SESSION_COMMANDS))
def test_help_lists_the_level_after_the_commands_own_options(command: str) -> None:
    """A runtime tuning knob is not the first thing a user reads in ``--help``."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = [a.option_strings[0] for a in sub._actions if a.option_strings and a.dest != "help"]
    assert flags.index("--nbits-accuracy-level") == len(flags) - 1, flags


def test_the_level_is_the_session_default_while_the_command_runs(caplog: pytest.LogCaptureFixture) -> None:
    assert default_nbits_accuracy() is None
    with caplog.at_level(logging.INFO), runtime_arguments(argparse.Namespace(nbits_accuracy_level=0)):
        assert default_nbits_accuracy() == 0
        assert "qdq_matmulnbits_accuracy_level=0" in caplog.text
        with runtime_arguments(argparse.Namespace()):  # a command without the option leaves it alone
            assert default_nbits_accuracy() == 0
    assert default_nbits_accuracy() is None  # restored: the next command in this process starts clean


def test_main_restores_the_default_when_the_command_fails() -> None:
    code = main(["validate", "--onnx-dir", "/nonexistent/bundle", "--nbits-accuracy-level", "0"])
    assert code == 2
    assert default_nbits_accuracy() is None


def test_reports_say_which_level_ran() -> None:
    """The eval command line reproduces the level; every report's environment names it."""
    from sam2_quant_plugin.cli.eval_cmd import command_line
    from sam2_quant_plugin.onnx.timing import environment

    args = build_parser().parse_args(["eval", "--nbits-accuracy-level", "0"])
    assert "--nbits-accuracy-level 0" in command_line(args)
    assert "--nbits-accuracy-level" not in command_line(build_parser().parse_args(["eval"]))
    assert environment()["nbits_accuracy_level"].startswith("4 (onnxruntime's default)")
    with runtime_arguments(args):
        assert environment()["nbits_accuracy_level"] == "0"
