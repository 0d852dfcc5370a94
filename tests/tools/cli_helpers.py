"""Run a tools subcommand's ``register``/``run`` the way ``edgepose-tools`` does."""

from __future__ import annotations

from types import ModuleType

from edgepose.cli.common import ArgumentParser, run_cli
from tools.cli import run_subcommand as run_parsed


def run_subcommand(module: ModuleType, argv: list[str]) -> int:
    parser = ArgumentParser(prog="edgepose-tools")
    module.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run_cli("edgepose-tools", lambda: run_parsed(args))
