"""What every edgepose CLI shares: one-line errors, exit codes, logging setup."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from edgepose.errors import EdgePoseError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown; usage errors are one line and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_cli(prog: str, func: Callable[[], int | None]) -> int:
    """Run ``func``; turn user errors into one line on stderr and exit code 2.

    An ``EdgePoseError`` exits 2 (bad input or config), Ctrl-C exits 130, and any
    other exception is a runtime failure (exit 1) with the traceback logged at debug.
    """
    try:
        rc = func()
        return EXIT_OK if rc is None else int(rc)
    except EdgePoseError as err:
        sys.stderr.write(f"{prog}: error: {err}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def add_subcommands(parser: argparse.ArgumentParser, modules: Sequence[str]) -> None:
    """Each module has ``register(subparsers)`` that adds a parser with ``func=run``."""
    import importlib

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
