"""``sam2-quant``: one command, one module per sub-command (``sam2_quant_plugin/cli/<name>.py``).

Each sub-command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Errors of this package (bad recipe, missing checkpoint, ...) print as one clear line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence

from ..errors import Sam2QuantError
from ..io.staging import discard_staged
from .checks import os_error_message
from .common import runtime_arguments

COMMANDS = ("inspect", "run", "export", "validate", "infer", "track", "bench", "cdpq", "eval")

DESCRIPTION = (
    "Per-layer mixed-precision quantization of SAM 2: recipes, CDPQ bit search, QDQ ONNX export validated "
    "on onnxruntime. Without --checkpoint, SAM 2 is built with SEEDED RANDOM INIT weights."
)
EPILOG = "Start with `sam2-quant run` (the main job); `sam2-quant COMMAND -h` lists a command's options."


def _load(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"sam2_quant_plugin.cli.{name}_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-quant", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


#: options whose value is a comma list of numbers, which may start with '-' (e.g. --point -5,10)
NUMERIC_LIST_OPTIONS = ("--point", "--neg-point", "--box")
_NUMBERS = re.compile(r"^-[0-9.eE+-]*(,[-0-9.eE+]*)*$|^-(inf|nan)", re.IGNORECASE)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--point -5,10`` -> ``--point=-5,10``: argparse would read ``-5,10`` as an unknown option."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in NUMERIC_LIST_OPTIONS:
            nxt = next(it, None)
            if nxt is not None and _NUMBERS.match(nxt):
                out.append(f"{a}={nxt}")
                continue
            out += [a] if nxt is None else [a, nxt]
            continue
        out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = join_negative_values(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    log = logging.getLogger("sam2-quant")
    try:
        with runtime_arguments(args):
            return int(args._run(args) or 0)
    except (Sam2QuantError, FileExistsError) as e:
        log.error("%s", e)
        return 2
    except OSError as e:  # read-only or full output folder, permissions: one line, never a traceback
        msg = os_error_message(e)
        if msg is None:
            raise
        log.error("%s", msg)
        return 2
    finally:
        for partial in discard_staged():  # output of a command that did not finish
            log.info("removed unfinished output %s", partial)


if __name__ == "__main__":
    sys.exit(main())
