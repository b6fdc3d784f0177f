"""The ``imunban`` command line. Each sub-module registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator, Sequence

from imunban.errors import ImunbanError
from imunban.version import VERSION

#: Sub-modules of imunban.cli that contribute sub-commands, in help order.
COMMAND_MODULES = (
    "produce", "operate", "dead", "trace", "control", "run", "exporter", "simulate", "web", "demo", "bench",
    "migrate",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imunban",
        description="Deliver Tencent Cloud Chat audio-video group unbans reliably, as fast as the API allows.",
    )
    parser.add_argument("--version", action="version", version=f"imunban {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"imunban.cli.{name}").register(sub)
    describe(parser)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str | None, argparse.ArgumentParser]]:
    """Every sub-command below ``parser``, nested ones too: (its name, its one-line help, its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield name, helps.get(name), child
                yield from subcommands(child)


def describe(parser: argparse.ArgumentParser) -> None:
    """A sub-command registered with a help line only gets it as its description too (``imunban X --help``)."""
    for _, text, child in subcommands(parser):
        if not child.description and text:
            child.description = text[0].upper() + text[1:] + "."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ImunbanError as exc:
        print(f"imunban: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
