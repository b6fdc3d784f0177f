"""The ``imunban`` command line. Each sub-module registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from imunban.errors import ImunbanError
from imunban.version import VERSION

#: Sub-modules of imunban.cli that contribute sub-commands, in help order.
COMMAND_MODULES = (
    "produce", "operate", "dead", "control", "run", "exporter", "simulate", "web", "demo", "bench", "migrate",
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
    return parser


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
