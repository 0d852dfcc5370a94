"""``edgepose-tools``: dev-PC pipeline: dataset -> train -> quantize -> check -> compile -> evaluate."""

from __future__ import annotations

import sys
from typing import Sequence

from edgepose.cli.common import ArgumentParser, add_subcommands, run_cli, setup_logging

SUBCOMMANDS = ("tools.dataset", "tools.train", "tools.quantize", "tools.check", "tools.compile", "tools.evaluate")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="edgepose-tools", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_subcommands(parser, SUBCOMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return run_cli("edgepose-tools", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
