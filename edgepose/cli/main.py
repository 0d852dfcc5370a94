"""``edgepose``: detect poses in images, manage models, check the device."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edgepose.cli.common import ArgumentParser, add_subcommands, run_cli, setup_logging

SUBCOMMANDS = ("edgepose.cli.detect", "edgepose.cli.models", "edgepose.cli.doctor")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="edgepose", description=__doc__)
    parser.add_argument("--log-level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_subcommands(parser, SUBCOMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def go() -> int:  # parsing too: a signal while the subcommands load is one line
        args = build_parser().parse_args(argv)
        setup_logging(args.log_level)
        return int(args.func(args) or 0)

    return run_cli("edgepose", go, final=argv is None)


if __name__ == "__main__":
    sys.exit(main())
