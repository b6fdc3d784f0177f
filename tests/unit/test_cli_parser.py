"""The command line's parser: every sub-command explains itself."""

from __future__ import annotations

from imunban.cli import build_parser, subcommands


def test_every_subcommand_has_a_help_line_and_a_description() -> None:
    """Each sub-command, nested ones too, has a line in its parent's list and a description in its own --help."""
    found = list(subcommands(build_parser()))
    assert {"status", "trace", "worker", "migrate", "list", "purge"} <= {name for name, _, _ in found}
    missing = [name for name, text, child in found if not text or not child.description]
    assert not missing, f"no help or description: {missing}"
