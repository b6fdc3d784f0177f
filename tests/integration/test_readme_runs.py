"""The README's operator commands run as written here, on the embedded default Redis (IMUNBAN_REDIS_URL unset).

Only what can run on this machine without an API, a worker or a file of the reader's: producing, cancelling,
status, trace, pause/resume and dead letters. tests/repo/test_docs_commands.py checks every other line parses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from doc_commands import imunban_commands, shell_blocks
from helpers import Run, cli_runner
from imunban.local import embedded
from imunban.version import VERSION

ROOT = Path(__file__).resolve().parents[2]

#: Sub-commands that run to completion here (worker, web, simulate and demo serve until stopped).
RUNNABLE = {"enqueue", "cancel", "status", "trace", "pause", "resume", "dead"}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """`imunban ARGS` in-process on a private embedded Redis, stopped afterwards."""
    monkeypatch.setenv("IMUNBAN_DATA_DIR", str(tmp_path / "data"))
    yield cli_runner(capsys)
    embedded.stop(str(tmp_path / "data"))


def readme_commands() -> list[list[str]]:
    """The README's runnable `imunban` command lines, in order, without those that need an apps or JSON Lines file."""
    commands = []
    for block in shell_blocks((ROOT / "README.md").read_text()):
        for args in imunban_commands(block):
            if args and args[0] in RUNNABLE and "--app" not in args and "--file" not in args:
                commands.append(args)
    return commands


def test_version(cli: Run) -> None:
    """`imunban --version` prints the version and exits 0."""
    assert cli("--version")[:2] == (0, f"imunban {VERSION}\n")


def test_readme_commands_run_as_written(cli: Run) -> None:
    """Each runnable README command, in the README's order, succeeds on the embedded default: exit 0 (status
    --check: its documented 0, 1 or 2 with one line; a dead-letter selection matching none: 1, saying so), and no
    error."""
    commands = readme_commands()
    assert {"enqueue", "cancel", "status", "trace", "dead", "pause", "resume"} <= {args[0] for args in commands}
    for args in commands:
        rc, out, err = cli(*args)
        assert "error" not in err, (args, err)
        if args[:2] == ["status", "--check"]:
            assert rc in (0, 1, 2) and len(out.strip().splitlines()) == 1, (args, out)
        elif args[0] == "dead" and args[1] in ("replay", "purge") and "--all" not in args:
            # A selection that matches no dead letter exits 1 and says so (there are none here).
            assert (rc, err.startswith("imunban: no dead letter matched")) in ((0, False), (1, True)), (args, rc, err)
        else:
            assert rc == 0, (args, rc, out, err)
