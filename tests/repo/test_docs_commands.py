"""Every `imunban ...` command line in the shell blocks of README.md and docs/*.md is one the CLI accepts as written.

The parser is built without running anything (tests/integration/test_readme_runs.py runs the ones that can run
here); a command that argparse refuses, or a sub-command or option that no longer exists, fails with its line.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from doc_commands import imunban_commands, shell_blocks
from imunban.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    return [
        (path.name, args)
        for path in DOCS
        for block in shell_blocks(path.read_text())
        for args in imunban_commands(block)
    ]


def test_commands_are_found() -> None:
    """The extraction sees the README's commands (guards the test below)."""
    commands = {" ".join(args) for _, args in documented_commands()}
    assert {"worker", "status --check", "demo", "dead purge --code 10004 --yes"} <= commands
    assert len(commands) >= 20


@pytest.mark.parametrize(
    ("doc", "args"), documented_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_documented_command_parses(doc: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The documented command line is accepted by the CLI's parser: sub-command, options and their values."""
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        assert exc.code == 0, f"{doc}: `imunban {' '.join(args)}` is refused: {capsys.readouterr().err.strip()}"


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its sub-commands, recursively."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def inline_mentions() -> list[tuple[str, list[str]]]:
    """`imunban SUBCOMMAND --option ...` spans in the prose (not in blocks): often a synopsis with placeholders."""
    out = []
    for path in DOCS:
        prose = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
        out += [(path.name, span.split()) for span in re.findall(r"`imunban ([^`]+)`", prose)]
    return out


def test_inline_mentions_name_real_commands_and_options() -> None:
    """Each `imunban ...` span in the docs' prose names a real sub-command, and every --option it shows exists on
    that sub-command (placeholders like GROUP or [--app NAME] are synopsis, not checked as values)."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    mentions = inline_mentions()
    assert len(mentions) >= 20
    for doc, words in mentions:
        if words[0] == "--version":
            continue
        assert words[0] in commands.choices, f"{doc}: no sub-command `imunban {words[0]}`"
        options = _options(commands.choices[words[0]])
        for word in words[1:]:
            option = word.strip("[]").split("=")[0]
            if option.startswith("--"):
                assert option in options, f"{doc}: `imunban {' '.join(words)}`: {option} does not exist"
