"""The ``buzon`` command. Every expected failure prints one line to stderr and exits 2;
Ctrl-C prints one line and exits 130."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from buzon import __version__
from buzon.cli import (
    cluster,
    connections,
    consume,
    destinations,
    migrate,
    publish,
    serve,
    shell,
    users,
)
from buzon.client import DestinationKind
from buzon.errors import BuzonError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line too (subcommands inherit the class)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("buzon").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"buzon: {where}{message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="buzon", description="buzon: a STOMP 1.2 message broker for Python teams."
    )
    parser.add_argument("--version", action="version", version=f"buzon {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(commands)
    users.register(commands)
    for kind in DestinationKind:
        destinations.register(commands, kind)
    connections.register(commands)
    cluster.register(commands)
    migrate.register(commands)
    publish.register(commands)
    consume.register(commands)
    shell.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``buzon`` console script and ``python -m buzon``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except BuzonError as exc:
        print(f"buzon: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("buzon: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
