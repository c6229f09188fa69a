"""Command line interface: ``python -m emo_utils <command> --help``.

Each subcommand is registered in :data:`COMMANDS` (name -> (help, add_arguments, run)).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import EmoUtilsError

__all__ = ["COMMANDS", "main", "register"]

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {}


def register(name: str, help: str):
    """Decorator pair: ``@register(name, help)`` on a function ``(parser) -> None`` that adds
    arguments and returns the runner ``(args) -> int``."""

    def deco(
        add_arguments: Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]],
    ):
        COMMANDS[name] = (help, add_arguments, None)  # runner filled in by build_parser
        return add_arguments

    return deco


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emo_utils", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        runner = add_arguments(p)
        p.set_defaults(_run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EmoUtilsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
