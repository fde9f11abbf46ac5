"""``sam2-quant``: one command, one module per sub-command (``sam2_quant_plugin/cli/<name>.py``).

Each sub-command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Errors of this package (bad recipe, missing checkpoint, ...) print as one clear line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ..errors import Sam2QuantError

COMMANDS = ("inspect", "run", "export", "validate", "infer", "bench", "cdpq", "eval")


def _load(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"sam2_quant_plugin.cli.{name}_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-quant", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except Sam2QuantError as e:
        logging.getLogger("sam2-quant").error("%s", e)
        return 2
    except FileExistsError as e:
        logging.getLogger("sam2-quant").error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
