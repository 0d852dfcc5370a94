"""``edgepose-tools``: dev-PC pipeline: dataset -> train -> quantize -> check -> compile -> evaluate
(or ``build``: import -> quantize -> check -> compile -> evaluate in one command)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgepose.cli.common import ArgumentParser, add_subcommands, run_cli, setup_logging
from tools.errors import ToolError

SUBCOMMANDS = ("tools.dataset", "tools.train", "tools.quantize", "tools.check", "tools.compile", "tools.evaluate",
               "tools.build")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="edgepose-tools", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_subcommands(parser, SUBCOMMANDS)
    return parser


def run_subcommand(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; a file the OS refuses (missing folder, read-only, a
    directory where a file belongs) is a one-line ToolError naming the path, not a traceback."""
    try:
        return args.func(args)
    except OSError as err:
        if err.filename is None:  # not about a path (e.g. a broken pipe): run_cli decides
            raise
        raise ToolError(f"cannot use {err.filename}: {err.strerror or err}; "
                        "check that the path exists, is the right kind (file or folder) and is writable") from None


def main(argv: Sequence[str] | None = None) -> int:
    def go() -> int:  # parsing too: a signal while the subcommands load is one line
        args = build_parser().parse_args(argv)
        setup_logging(args.log_level)
        return run_subcommand(args)

    return run_cli("edgepose-tools", go, final=argv is None)


if __name__ == "__main__":
    sys.exit(main())
