"""The docs stay true: every setting documented, the README's commands real and CI's own."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from imunban.cli import build_parser
from imunban.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
#: Read by docker-compose.yml only, never by the application.
COMPOSE_ONLY = {"IMUNBAN_REDIS_MAXMEMORY"}
#: Settings fields whose name is not the variable's name in lower case.
FIELD_OF = {"IMUNBAN_RATE_LIMIT": "rate_limit_per_s"}


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_variables() -> set[str]:
    """Every IMUNBAN_ variable Settings.from_env looks up, plus any named in settings.py's source."""
    recorder = _Recorder()
    Settings.from_env(recorder)
    source = (ROOT / "worker" / "imunban" / "settings.py").read_text()
    named = {PREFIX + m for m in re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source)}
    named |= set(re.findall(r"\b(IMUNBAN_[A-Z0-9_]+)\b", source))
    return {name for name in recorder.asked | named if name.startswith(PREFIX)}


def doc_table() -> dict[str, str]:
    """variable -> its default cell, from the tables in docs/configuration.md."""
    rows = re.findall(r"^\| `(IMUNBAN_[A-Z0-9_]+)` \| ([^|]*) \|", CONFIG_DOC.read_text(), flags=re.MULTILINE)
    return dict(rows)


def test_settings_variables_found() -> None:
    """The variable finder sees the well-known ones (guards the test itself)."""
    found = settings_variables()
    assert {"IMUNBAN_REDIS_URL", "IMUNBAN_SECRET_KEY", "IMUNBAN_SECRET_KEY_FILE", "IMUNBAN_RATE_LIMIT"} <= found


def test_every_setting_is_documented() -> None:
    """Every IMUNBAN_ variable settings.py reads has a row in docs/configuration.md."""
    missing = settings_variables() - set(doc_table())
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_documented_variables_exist() -> None:
    """docs/configuration.md documents no variable that nothing reads."""
    unknown = set(doc_table()) - settings_variables() - COMPOSE_ONLY
    assert not unknown, f"documented but never read: {sorted(unknown)}"


def test_every_setting_is_in_env_example() -> None:
    """Every IMUNBAN_ variable is in .env.example, as a setting or in a comment saying why not."""
    text = ENV_EXAMPLE.read_text()
    missing = {name for name in settings_variables() | COMPOSE_ONLY if not re.search(rf"\b{name}\b", text)}
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_values_are_valid_settings() -> None:
    """The values .env.example sets are accepted by Settings, and none of them is a secret or a password."""
    values = dict(re.findall(r"^(IMUNBAN_[A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert "IMUNBAN_SECRET_KEY" not in values
    assert not [name for name in values if "PASSWORD" in name], "passwords are secret files, not .env values"
    Settings.from_env({k: v for k, v in values.items() if k not in COMPOSE_ONLY})


def test_documented_defaults_match_settings() -> None:
    """Each documented default (the first `code` in its cell) is what Settings uses when unset."""
    defaults = Settings.from_env({})
    fields = {f.name for f in dataclasses.fields(Settings)}
    checked = 0
    for name, cell in doc_table().items():
        field = FIELD_OF.get(name, name.removeprefix(PREFIX).lower())
        shown = re.match(r"\s*`([^`]+)`", cell)
        if field not in fields or shown is None or getattr(defaults, field) is None:
            continue
        actual = getattr(defaults, field)
        if isinstance(actual, int | float):
            assert float(shown.group(1)) == float(actual), name
        else:
            assert shown.group(1) == str(actual), name
        checked += 1
    assert checked >= 15


def _quickstart_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's test command is, verbatim, a line .ci/run executes, and it ends in `make check`."""
    ci_lines = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert tests in ci_lines
    assert tests == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && make check"
    assert demo == "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/imunban demo"


def _make_targets() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines) of the Makefile (``$(BIN)`` and friends left unexpanded)."""
    targets: dict[str, tuple[list[str], list[str]]] = {}
    recipe: list[str] = []
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and targets:
            recipe.append(line.strip())
        elif match := re.match(r"^([\w-]+):(?!=)\s*([^#]*)", line):
            recipe = []
            targets[match.group(1)] = (match.group(2).split(), recipe)
    return targets


def test_make_check_runs_lint_types_contracts_and_every_test() -> None:
    """`make check` (what CI runs) is ruff, lint-imports, mypy --strict and pytest on every tier, nothing skipped."""
    targets = _make_targets()
    assert targets["check"][0] == ["lint", "typecheck", "test"]
    lint = " ".join(targets["lint"][1])
    assert "ruff check worker tasks tests" in lint.replace("$(SOURCES)", "worker tasks tests")
    assert "ruff format --check" in lint and "lint-imports" in lint
    assert "mypy --strict" in " ".join(targets["typecheck"][1])
    test = " ".join(targets["test"][1])
    assert "$(call pytest,)" in test, "make test selects no subset: no -m, no -k, no path"
    assert '"unit or redis"' in " ".join(targets["test-fast"][1])


def _code_in(markdown: str) -> str:
    """The text of fenced code blocks and `inline code` spans."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL))
    return "\n".join(fenced + inline)


def test_readme_commands_exist() -> None:
    """Every `imunban SUBCOMMAND` in the README's code is a real sub-command."""
    parser = build_parser()
    choices = next(a.choices for a in parser._actions if a.dest == "command")
    assert isinstance(choices, dict)
    used = set(
        re.findall(
            r"(?:^|[\s/\"'(])(?<!import )(?<!from )imunban ([a-z][a-z-]*)",
            _code_in(README.read_text()),
            flags=re.MULTILINE,
        )
    )
    assert {"worker", "enqueue", "status"} <= used
    missing = used - set(choices)
    assert not missing, f"README mentions commands that do not exist: {sorted(missing)}"
