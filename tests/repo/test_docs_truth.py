"""What README.md and docs/*.md state about the code is true: cited tests exist, key names are keys.py's, quoted
errors are today's, .env.example changes no default silently, the demo's numbers are the demo's."""

from __future__ import annotations

import inspect
import random
import re
from pathlib import Path

import pytest
from test_docs import COMPOSE_ONLY, settings_variables

from imunban.demo.run import DUPLICATE_EVENTS, GROUPS, PER_GROUP, SCHEDULED, SPREAD_S, events_text, make_plan
from imunban.errors import ConfigError
from imunban.keys import Keys
from imunban.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENV_EXAMPLE = ROOT / ".env.example"
#: A comment line that marks the next value in .env.example as a deliberate change of the default.
DELIBERATE = "# deliberately not the default:"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_cited_test_files_exist() -> None:
    """Every tests/... path the docs cite is a file or folder of this repository."""
    cited = {(p.name, m) for p in DOCS for m in re.findall(r"\btests/[\w./-]*\w/?", _text(p))}
    assert len(cited) >= 5
    missing = sorted(f"{doc}: {path}" for doc, path in cited if not (ROOT / path).exists())
    assert not missing, missing


def _known_keys() -> set[tuple[str, str]]:
    """(scope, name after the tag) of every key keys.py builds, ``*`` where a variable part goes."""
    keys, known = Keys("P", "A"), set()
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or "pattern" in name or name in ("tag", "app_of_stats_key", "single_app_layout"):
            continue
        if isinstance(member, property):
            value = getattr(keys, name)
        elif inspect.isfunction(member) and len(inspect.signature(member).parameters) == 2:
            value = getattr(keys, name)("\0")
        else:
            continue
        for scope, tag in (("app", "{P:A}:"), ("deployment", "{P}:")):
            if isinstance(value, str) and value.startswith(tag):
                # A prefix (``trace:``, whose shards end in a digest of the member) names keys with a variable part.
                name = value.removeprefix(tag).replace("\0", "*")
                known.add((scope, name + "*" if name.endswith(":") else name))
    return known


#: ``{imunban:default}:sched:<group>``, ``{PREFIX:APP}:outcomes``, ``{imunban}:web:revoked:<id>``.
TAGGED = re.compile(r"\{[\w<>]+(?P<app>:[\w<>]+)?\}:(?P<name>[a-z_]+(?::[a-z_]+)*)(?P<var>:(?:<\w+|\{\w+\}|[A-Z]+))?")
#: The README's diagram, where ``t`` stands for the app's tag: ``t:ready:<group>``.
DIAGRAM = re.compile(r"(?<![\w{])t:(?P<name>[a-z_]+(?::[a-z_]+)*)(?P<var>:<\w+>)?")


def test_key_patterns_match_keys_py() -> None:
    """Every key name the docs show ({prefix:app}:name..., the README diagram's t:name) is one keys.py builds."""
    known, shown = _known_keys(), set()
    for path in DOCS:
        for match in TAGGED.finditer(_text(path)):
            scope = "app" if match.group("app") else "deployment"
            shown.add((path.name, scope, match.group("name") + (":*" if match.group("var") else "")))
    diagram = _text(ROOT / "README.md").split("## How it works", 1)[1].split("\n## ", 1)[0]
    for match in DIAGRAM.finditer(diagram):
        shown.add(("README.md", "app", match.group("name") + (":*" if match.group("var") else "")))
    assert len(shown) >= 15
    wrong = sorted(f"{doc}: {scope} key {name}" for doc, scope, name in shown if (scope, name) not in known)
    assert not wrong, wrong


def test_no_unbraced_key_names() -> None:
    """Key names of the layout before several apps (<prefix>:name, p:name) appear only where the docs say so."""
    old = re.compile(r"(?<![\w{}])(?:<prefix>|PREFIX|p):(?:sched|ready|groups|outcomes|dead|stats|hold)\b")
    for path in DOCS:
        for paragraph in _text(path).split("\n\n"):
            if old.search(paragraph):
                assert "before several apps" in paragraph, f"{path.name}: {old.search(paragraph)}"


def test_quoted_errors_are_todays() -> None:
    """Every `imunban: error: IMUNBAN_X ... got V` the docs quote is what Settings says for IMUNBAN_X=V today."""
    quoted = [
        (path.name, m.group(1))
        for path in DOCS
        for m in re.finditer(r"`imunban: error: ((IMUNBAN_[A-Z_]+)[^`]*)`", _text(path))
    ]
    assert quoted, "configuration.md quotes an error"
    for doc, message in quoted:
        variable = message.split()[0]
        value = re.search(r"got '?([^'`]*)'?$", message)
        assert value, f"{doc}: quote the value in {message!r}"
        with pytest.raises(ConfigError) as raised:
            Settings.from_env({variable: value.group(1)})
        assert str(raised.value) == message, doc


def _env_example_values() -> list[tuple[str, str, bool]]:
    """(variable, value, marked deliberate) for each uncommented IMUNBAN_ line of .env.example."""
    out, previous = [], ""
    for line in _text(ENV_EXAMPLE).splitlines():
        if match := re.match(r"^(IMUNBAN_[A-Z0-9_]+)=(.*)$", line):
            out.append((match.group(1), match.group(2).strip(), previous.startswith(DELIBERATE)))
        previous = line
    return out


def test_env_example_names_only_known_variables() -> None:
    """Every IMUNBAN_* name in .env.example, set or in a comment, is one imunban or the compose files read."""
    named = set(re.findall(r"\b(IMUNBAN_[A-Z0-9_]+)\b", _text(ENV_EXAMPLE)))
    unknown = named - settings_variables() - COMPOSE_ONLY
    assert not unknown, f".env.example names unknown variables: {sorted(unknown)}"


def test_env_example_changes_no_default_silently() -> None:
    """`cp .env.example .env` behaves as no .env: each value set is the default, unless marked as deliberate."""
    default = Settings.from_env({})
    compose = {}
    for name in ("docker-compose.yml", "docker-compose.ha.yml"):
        compose.update(dict(re.findall(r"\$\{(IMUNBAN_[A-Z_]+):-([^}]*)\}", _text(ROOT / name))))
    values = _env_example_values()
    assert values
    for name, value, deliberate in values:
        if value == "" or deliberate:
            continue
        if name in COMPOSE_ONLY:
            assert compose.get(name) == value, f"{name}={value} is not the compose files' default"
            continue
        assert Settings.from_env({name: value}) == default, f"{name}={value} is not the default: say so ({DELIBERATE})"


def test_demo_numbers_are_the_demos() -> None:
    """The README's description of the demo uses the demo's own numbers, the ones its summary prints."""
    readme = " ".join(_text(ROOT / "README.md").split())
    burst = GROUPS * PER_GROUP
    assert f"a burst of {burst:,} unbans across {GROUPS} groups" in readme
    assert f"{DUPLICATE_EVENTS:,} of them sent twice" in readme
    assert f"{SCHEDULED:,} ban expiries over the next {SPREAD_S:g} s" in readme
    events = burst + DUPLICATE_EVENTS + SCHEDULED
    assert f"{events:,} events" in readme
    plan = make_plan(0.0, random.Random(1))
    assert events_text(plan) == f"{events:,} ({burst:,} unbans + {DUPLICATE_EVENTS:,} repeats, {SCHEDULED:,} expiries)"


def test_redis_cluster_is_described_one_way() -> None:
    """Each paragraph that shows a redis+cluster:// URL says where the Celery broker goes; none calls it unsupported
    for the state."""
    for path in DOCS:
        for paragraph in re.split(r"\n\s*\n|\n- ", _text(path)):
            if "redis+cluster://" in paragraph:
                assert "IMUNBAN_BROKER_URL" in paragraph, f"{path.name}: {paragraph[:80]!r}"
            assert not re.search(r"Cluster[^.]*not supported|not supported[^.]*Cluster", paragraph), path.name
